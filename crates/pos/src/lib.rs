//! The store domain: catalog, pricing, promotions, cart, transactions, payments, receipts,
//! inventory, reports, customers, cashiers and the audit chain.
//!
//! Pure logic: no I/O, no clock, no randomness. Every function that needs the time takes
//! `now_ms` (milliseconds since the Unix epoch); every function that needs randomness takes
//! the random bytes. Money is `i64` minor units everywhere (see [`money`]).
//!
//! Events, bases, requests and the database feed this crate: no arithmetic here may
//! overflow (checked or saturating only; the release profile's overflow checks are the
//! backstop; tests are exempt). `calendar` is the one exception: date arithmetic on bounded
//! ranges.

#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

pub mod audit;
pub mod calendar;
pub mod cart;
pub mod cash;
pub mod cashier;
pub mod catalog;
pub mod codec;
pub mod customer;
pub mod event;
pub mod inventory;
pub mod money;
pub mod payment;
pub mod pricing;
pub mod promotion;
pub mod receipt;
pub mod replica;
pub mod report;
pub mod returns;
pub mod revocation;
pub mod seal;
pub mod state;
pub mod trace;
pub mod transaction;
pub mod vision;

pub use money::Minor;
