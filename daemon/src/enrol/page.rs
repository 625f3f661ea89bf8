//! The waiting till's screen: its code (what a manager confirms on another till), a field
//! for a join token, and a small script that follows the enrolment and opens the till's own
//! screen once it has started.

use super::{Waiting, admit_token};
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

/// The script the page loads (`/enrol.js`): polls the enrolment state, says when the till
/// is joining, and opens the till's screen once it answers.
const SCRIPT: &str = r#"(function () {
  var state = document.getElementById('state');
  var joined = false;
  function poll() {
    fetch('/api/v1/enrolment', {cache: 'no-store'}).then(function (r) {
      if (r.status === 404 && joined) { location.href = '/'; return null; }
      return r.ok ? r.json() : null;
    }).then(function (v) {
      if (v && v.state === 'joining') {
        joined = true;
        state.textContent = 'Approved: joining store ' + v.store_id + ' as till ' + v.terminal + '. The till is starting.';
        var form = document.querySelector('form');
        if (form) { form.hidden = true; }
      }
    }).catch(function () {})
      .then(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
"#;

fn html(body: String) -> Response {
    let mut r = Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>tillmesh: waiting to join</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:3em auto}}.code{{font-size:3em;letter-spacing:.1em}}\
         textarea{{width:100%;height:8em}}</style></head><body>{body}</body></html>"
    ))
    .into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; form-action 'self'",
        ),
    );
    r
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

pub(super) async fn page(State(w): State<Arc<Waiting>>) -> Response {
    let store = if w.cfg.store.store_id.trim().is_empty() {
        "a store".to_string()
    } else {
        format!("store {}", escape(&w.cfg.store.store_id))
    };
    html(format!(
        "<h1>This till is waiting to join {store}</h1>\
         <p>Its code: <span class=code id=code>{}</span></p>\
         <p>A manager approves it on any till of the store (Back office, <em>New tills</em>) by \
         confirming this code with their PIN.</p>\
         <p id=state role=status>Waiting for approval.</p>\
         <form method=post action=/enrol><label for=token>Or scan or type a join token \
         (<code>tillmesh store token</code>):</label><textarea id=token name=token></textarea>\
         <button type=submit>Join</button></form><script src=/enrol.js></script>",
        escape(&w.code)
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct FormBody {
    token: String,
}

pub(super) async fn form(
    State(w): State<Arc<Waiting>>,
    body: Result<Form<FormBody>, axum::extract::rejection::FormRejection>,
) -> Response {
    let text = body.map(|Form(f)| f.token).unwrap_or_default();
    match admit_token(&w, &text).await {
        Ok(t) => html(format!(
            "<h1>Joining store {} as till {}</h1><p>The till is starting; this page will be the till's in a moment.</p>",
            escape(&t.store_id),
            t.terminal
        )),
        Err((status, _, message)) => {
            let mut r = html(format!(
                "<h1>That token was not accepted</h1><p id=why>{}</p><p><a href=/>Try again</a></p>",
                escape(&message)
            ));
            *r.status_mut() = status;
            r
        }
    }
}
