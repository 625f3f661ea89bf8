//! Gift cards and store credit: balances kept as bounded counters (escrow, `tillmesh_crdt::
//! BoundedCounter`) so that no card is spent twice across tills that cannot talk. A card is
//! activated or topped up only while the store is online (the one rule of
//! `Till::online_refusal`); the rights to spend it are created at the till that took the
//! money. A till redeems a card as a sale's tender within the rights it holds, less what its
//! open sales already hold on it; short of them, it asks the tills it can reach
//! (`GiftCardRightsAsked`, replicated like any event), and each that holds spare rights hands
//! them over (`GiftCardRightsMoved`, written by the giver: only a till moves its own rights).

use super::*;
use tillmesh_pos::payment::{coupon_account, credit_account};

/// Largest balance one activation or top-up adds (minor units).
pub const GIFT_CARD_AMOUNT_MAX: i64 = 50_000_000;
/// An ask older than this is not answered (the asker has moved on).
const ASK_FRESH_MS: u64 = 5 * 60_000;
/// Most asks waiting to be answered.
pub(super) const ASKS_MAX: usize = 256;
/// A till asks again for the same card only after this long.
const ASK_AGAIN_MS: u64 = 5_000;

/// What an issue of stored value is: which account, why, and its rules.
pub(super) struct Issue<'a> {
    /// Audit action.
    pub action: &'a str,
    /// The account (a gift card code, `credit:…`, `coupon:…`).
    pub account: &'a str,
    /// The account in words, for errors.
    pub what: String,
    /// Recorded with the event (`activation`, `top_up`, `refund`, `goodwill`, `return`...).
    pub reason: &'a str,
    /// Refused while the store is offline (money taken for a gift card).
    pub online_only: bool,
    /// `Some(true)`: a new account only; `Some(false)`: an existing one only; `None`: either.
    pub new: Option<bool>,
}

/// A commit submitted, to wait on.
pub(super) type Pending =
    tokio::sync::oneshot::Receiver<Result<tillmesh_store::CommitInfo, tillmesh_store::StoreError>>;

/// An ask for rights from another till, to answer.
#[derive(Clone, Debug)]
pub(super) struct Ask {
    pub from: ReplicaId,
    pub card: String,
    pub amount: u64,
}

/// A gift card as this till knows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct GiftCardView {
    /// The card's code.
    pub card: String,
    /// Its balance (minor units): everything added less everything spent, as this till
    /// knows it.
    pub balance: i64,
    /// What this till may spend of it now: its rights, less what its open sales hold.
    pub spendable_here: i64,
    /// Rights per till.
    pub holders: Vec<RightsHeld>,
}

/// Rights to a gift card held by one till.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RightsHeld {
    /// The till's terminal id.
    pub terminal: u64,
    /// Minor units it may spend.
    pub rights: i64,
}

/// `POST /api/v1/giftcards`: activate a card (online only).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    /// The card's code (printed on it, 6 to 32 letters, digits or `-`); a new code is made
    /// when omitted.
    pub card: Option<String>,
    /// The amount loaded (minor units, received from the customer).
    pub amount: i64,
}

/// `POST /api/v1/giftcards/{card}/top-up`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUpRequest {
    /// The amount added (minor units).
    pub amount: i64,
}

pub(super) fn check_code(card: &str) -> Result<(), TillError> {
    let ok = (6..=32).contains(&card.len())
        && card
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(TillError::bad_request(
            "bad_card",
            "a gift card code is 6 to 32 capital letters, digits or '-'",
        ))
    }
}

pub(super) fn check_amount(amount: i64) -> Result<(), TillError> {
    if (1..=GIFT_CARD_AMOUNT_MAX).contains(&amount) {
        Ok(())
    } else {
        Err(TillError::unprocessable(
            "wrong_amount",
            format!("a gift card takes 1 to {GIFT_CARD_AMOUNT_MAX} at a time"),
        ))
    }
}

pub(super) fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What this till's open sales hold on `card` (gift-card tenders taken, not yet final).
pub(super) fn reserved(drafts: &HashMap<String, Draft>, card: &str) -> u64 {
    drafts
        .values()
        .flat_map(|d| d.payments.iter())
        .filter(|p| {
            p.method.spends_balance()
                && p.status == PaymentStatus::Captured
                && p.provider_ref.as_deref() == Some(card)
        })
        .map(|p| p.amount.max(0).unsigned_abs())
        .sum()
}

impl Till {
    pub(super) fn card_view(core: &Core, card: &str) -> Option<GiftCardView> {
        let c = core.replica.state().gift_cards.get(card)?;
        let mine = core.replica.gift_card_rights(card);
        Some(GiftCardView {
            card: card.to_string(),
            balance: as_i64(c.value()),
            spendable_here: as_i64(mine.saturating_sub(reserved(&core.drafts, card))),
            holders: c
                .holders()
                .into_iter()
                .map(|(r, n)| RightsHeld {
                    terminal: r.terminal(),
                    rights: as_i64(n),
                })
                .collect(),
        })
    }

    /// A card's balance and where its rights are.
    pub fn gift_card(&self, card: &str) -> Result<GiftCardView, TillError> {
        // Only a card's code: never another kind of account (`credit:…`, `coupon:…`).
        if check_code(card).is_err() {
            return Err(TillError::not_found(
                "unknown_card",
                format!("no gift card {card} in this store"),
            ));
        }
        Self::card_view(&self.core(), card).ok_or_else(|| {
            TillError::not_found("unknown_card", format!("no gift card {card} in this store"))
        })
    }

    async fn issue_card(
        &self,
        s: &Session,
        action: &str,
        card: &str,
        amount: i64,
        new: bool,
    ) -> Result<GiftCardView, TillError> {
        check_code(card)?;
        let issue = Issue {
            action,
            account: card,
            what: format!("gift card {card}"),
            reason: if new { "activation" } else { "top_up" },
            online_only: true,
            new: Some(new),
        };
        self.issue_account(s, &issue, amount).await
    }

    /// Adds `amount` to a stored-value account, the rights created at this till (audited).
    pub(super) async fn issue_account(
        &self,
        s: &Session,
        i: &Issue<'_>,
        amount: i64,
    ) -> Result<GiftCardView, TillError> {
        check_amount(amount)?;
        self.audited(&s.employee_id, i.action, i.account, async {
            let now = self.now();
            if i.online_only {
                self.check_online(now)?;
            }
            let (rx, view) = {
                let (mut core, slot) = self.core_for_write()?;
                let exists = core.replica.state().gift_cards.contains_key(i.account);
                if i.new == Some(true) && exists {
                    return Err(TillError::conflict(
                        "card_exists",
                        format!("{} exists already: top it up instead", i.what),
                    ));
                }
                if i.new == Some(false) && !exists {
                    return Err(TillError::not_found(
                        "unknown_card",
                        format!("no {} in this store", i.what),
                    ));
                }
                let e =
                    core.replica
                        .issue_gift_card(i.account, amount, &s.employee_id, i.reason, now);
                // Fresh rights are not idle yet: the customer may spend them here at once.
                if core.used.len() >= ASKS_MAX {
                    core.used.clear();
                }
                core.used.insert(i.account.to_string(), now);
                let rec = audit_rec(
                    now,
                    &s.employee_id,
                    i.action,
                    i.account,
                    "ok",
                    format!("{amount} ({})", i.reason),
                );
                let rx = self.submit(
                    slot,
                    WriteBatch {
                        events: vec![e],
                        audit: vec![rec],
                        ..Default::default()
                    },
                )?;
                (rx, Self::card_view(&core, i.account))
            };
            self.durable(rx).await?;
            view.ok_or_else(|| TillError::Internal("the account just issued is missing".into()))
        })
        .await
    }

    /// Activates a gift card with `amount` (online only).
    pub async fn activate_gift_card(
        &self,
        s: &Session,
        req: &ActivateRequest,
    ) -> Result<GiftCardView, TillError> {
        let card = match &req.card {
            Some(c) => c.trim().to_ascii_uppercase(),
            None => {
                let n = u64::from_le_bytes(random_bytes::<8>()) % 10_000_000_000_000_000;
                format!("GC{n:016}")
            }
        };
        self.issue_card(s, "giftcard.activate", &card, req.amount, true)
            .await
    }

    /// Adds `amount` to an active card (online only).
    pub async fn top_up_gift_card(
        &self,
        s: &Session,
        card: &str,
        req: &TopUpRequest,
    ) -> Result<GiftCardView, TillError> {
        self.issue_card(s, "giftcard.top_up", card, req.amount, false)
            .await
    }

    /// Takes a gift card, the customer's store credit or a coupon as a sale's tender: within
    /// what this till may spend of the account now; short of that, asks the other tills for
    /// the rest and answers 409. A coupon is spent whole (it is single-use).
    pub(super) async fn add_balance_payment(
        &self,
        s: &Session,
        id: &str,
        req: &PaymentRequest,
    ) -> Result<TxnView, TillError> {
        let code = req.card.as_deref().map(|c| c.trim().to_ascii_uppercase());
        let (account, what) = match req.method {
            Method::GiftCard => {
                let card = code.ok_or_else(|| {
                    TillError::bad_request("missing_field", "a gift card payment needs 'card'")
                })?;
                check_code(&card)?;
                (card.clone(), format!("gift card {card}"))
            }
            Method::Coupon => {
                let c = code.ok_or_else(|| {
                    TillError::bad_request(
                        "missing_field",
                        "a coupon payment needs 'card' (the coupon's code)",
                    )
                })?;
                check_code(&c)?;
                (coupon_account(&c), format!("coupon {c}"))
            }
            _ => {
                let customer = self
                    .core()
                    .drafts
                    .get(id)
                    .and_then(|d| d.customer_id.clone());
                let customer = customer.ok_or_else(|| {
                    TillError::unprocessable(
                        "no_customer",
                        "store credit is the customer's: attach the customer to the sale first",
                    )
                })?;
                (
                    credit_account(&customer),
                    format!("customer {customer}'s store credit"),
                )
            }
        };
        let method = req.method;
        let out = self
            .edit_draft(s, "transaction.payment", id, |core, now| {
                let held = core.replica.gift_card_rights(&account);
                let reserved = reserved(&core.drafts, &account);
                // The sale exists; the account it names does not: 422, not 404.
                let Some(c) = core.replica.state().gift_cards.get(&account) else {
                    let code = if method == Method::StoreCredit { "no_credit" } else { "unknown_card" };
                    return Err(TillError::unprocessable(code, format!("no {what} in this store")));
                };
                let balance = c.value();
                let (d, due) = pay::taking_payment(core, id, now)?;
                let spendable = held.saturating_sub(reserved);
                if method == Method::Coupon {
                    if balance == 0 {
                        return Err(TillError::unprocessable(
                            "coupon_used",
                            format!("{what} was used already"),
                        ));
                    }
                    if as_i64(balance) > due || req.amount.is_some_and(|a| a != as_i64(balance)) {
                        return Err(payment::PaymentError::WrongAmount {
                            amount: req.amount.unwrap_or(as_i64(balance)),
                            reason: format!(
                                "{what} is worth {balance}, spent whole in one go: the sale must still have that much due ({due})"
                            ),
                        }
                        .into());
                    }
                }
                let amount = req.amount.unwrap_or_else(|| due.min(as_i64(balance)));
                if amount <= 0 || amount > due {
                    return Err(payment::PaymentError::WrongAmount {
                        amount,
                        reason: format!("{what} pays between 1 and the {due} still due"),
                    }
                    .into());
                }
                if amount.unsigned_abs() > balance {
                    return Err(TillError::unprocessable(
                        "card_balance",
                        format!("{what} holds {balance}: take the rest another way"),
                    ));
                }
                if amount.unsigned_abs() > spendable {
                    return Err(TillError::conflict(
                        "rights_elsewhere",
                        format!(
                            "this till may spend {spendable} of {what}'s {balance} now; the rest is held by other tills, which are asked for it: try again in a moment, or take {spendable} now"
                        ),
                    ));
                }
                let pid = format!("{}-P{}", d.txn_id, d.payments.len() + 1);
                d.payments.push(Payment {
                    payment_id: pid.clone(),
                    method,
                    amount,
                    tendered: amount,
                    change: 0,
                    provider: Some(method.as_str().into()),
                    provider_ref: Some(account.clone()),
                    qr_payload: None,
                    expires_at_ms: None,
                    status: PaymentStatus::Captured,
                });
                if core.used.len() >= ASKS_MAX {
                    core.used.clear();
                }
                core.used.insert(account.clone(), now);
                Ok(format!("{pid} {} {amount} {account}", method.as_str()))
            })
            .await;
        if let Err(e) = &out
            && e.code() == "rights_elsewhere"
        {
            let want = req
                .amount
                .unwrap_or(GIFT_CARD_AMOUNT_MAX)
                .min(GIFT_CARD_AMOUNT_MAX);
            self.ask_for_rights(&account, want).await;
        }
        out
    }

    /// Asks the other tills for rights to `card` (the shortfall for `want`), at most once per
    /// [`ASK_AGAIN_MS`] per card.
    async fn ask_for_rights(&self, card: &str, want: i64) {
        let now = self.now();
        let rx = {
            let Ok((mut core, slot)) = self.core_for_write() else {
                return;
            };
            if core
                .asked
                .get(card)
                .is_some_and(|at| now.saturating_sub(*at) < ASK_AGAIN_MS)
            {
                return;
            }
            let spendable = core
                .replica
                .gift_card_rights(card)
                .saturating_sub(reserved(&core.drafts, card));
            let short = want.max(1).saturating_sub(as_i64(spendable)).max(1);
            if core.asked.len() >= ASKS_MAX {
                core.asked.clear();
            }
            core.asked.insert(card.to_string(), now);
            let e = core.replica.ask_gift_card_rights(card, short, now);
            match self.submit(
                slot,
                WriteBatch {
                    events: vec![e],
                    ..Default::default()
                },
            ) {
                Ok(rx) => rx,
                Err(e) => {
                    warn!(cause = %e, "could not ask for gift card rights");
                    return;
                }
            }
        };
        if let Err(e) = self.durable(rx).await {
            warn!(cause = %e, "could not ask for gift card rights");
        }
    }

    /// Notes a peer's ask for rights, to answer on the next round.
    pub(super) fn note_ask(core: &mut Core, e: &Event, now: u64) {
        if let EventBody::GiftCardRightsAsked { card, amount } = &e.body
            && e.origin != core.replica.id()
            && now.saturating_sub(e.hlc.wall_ms) <= ASK_FRESH_MS
            && core.asks.len() < ASKS_MAX
        {
            core.asks.push(Ask {
                from: e.origin,
                card: card.clone(),
                amount: amount.max(&0).unsigned_abs(),
            });
        }
    }

    /// Answers the asks received: hands each asker what it asked of what this till holds
    /// spare of the card (its rights less what its open sales hold), or half the spare if
    /// that is more.
    pub async fn answer_rights_asks(&self) -> Result<usize, TillError> {
        if self.core().asks.is_empty() {
            return Ok(0);
        }
        let now = self.now();
        let rx = {
            let (mut core, slot) = self.core_for_write()?;
            let asks = std::mem::take(&mut core.asks);
            let mut events = Vec::new();
            for a in asks {
                let spare = core
                    .replica
                    .gift_card_rights(&a.card)
                    .saturating_sub(reserved(&core.drafts, &a.card));
                // What was asked, or half of what is spare if more: rights follow demand in
                // chunks, so the asker need not ask again at its next sale.
                let give = spare.min(a.amount.max(spare / 2));
                if give == 0 {
                    continue;
                }
                if let Ok(e) =
                    core.replica
                        .move_gift_card_rights(&a.card, a.from, as_i64(give), now)
                {
                    info!(card = %a.card, to = %a.from, amount = give, "gift card rights handed over");
                    events.push(e);
                }
            }
            self.submit_moves(slot, events)?
        };
        self.durable_moves(rx).await
    }

    /// Submits rights moves in the write slot taken: what to wait on, and how many.
    pub(super) fn submit_moves(
        &self,
        slot: tillmesh_store::Slot,
        events: Vec<Event>,
    ) -> Result<(Option<Pending>, usize), TillError> {
        if events.is_empty() {
            return Ok((None, 0));
        }
        let n = events.len();
        let rx = self.submit(
            slot,
            WriteBatch {
                events,
                ..Default::default()
            },
        )?;
        Ok((Some(rx), n))
    }

    /// Waits for moves submitted by [`Till::submit_moves`]; how many there were.
    pub(super) async fn durable_moves(
        &self,
        (rx, n): (Option<Pending>, usize),
    ) -> Result<usize, TillError> {
        if let Some(rx) = rx {
            self.durable(rx).await?;
        }
        Ok(n)
    }
}
