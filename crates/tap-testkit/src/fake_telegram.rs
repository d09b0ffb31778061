//! A fake Telegram Bot API on 127.0.0.1 speaking the real JSON shapes of the
//! methods TAP calls: `getMe`, `getUpdates` (long polling: `offset` confirms
//! earlier updates, `timeout` bounds the wait), `sendMessage`,
//! `editMessageText`, `editMessageReplyMarkup`, `answerCallbackQuery`,
//! `setWebhook`, `deleteWebhook`. It records every call (with the token from
//! the path) and lets a test inject button presses and messages.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Longest a long poll is held, whatever `timeout` asks.
pub(crate) const MAX_POLL_WAIT: Duration = Duration::from_secs(30);

/// One recorded Bot API call.
#[derive(Clone, Debug)]
pub struct BotCall {
    /// The token from `/bot<token>/<method>`.
    pub token: String,
    /// The method.
    pub method: String,
    /// The JSON body (`null` when empty or not JSON).
    pub body: Value,
}

/// A message as the fake chat holds it now.
#[derive(Clone, Debug)]
pub struct FakeMessage {
    /// Chat id, as text.
    pub chat_id: String,
    /// Message id.
    pub message_id: i64,
    /// Current text.
    pub text: String,
    /// Current buttons: (label, callback data, or the URL of a link button).
    pub buttons: Vec<(String, String)>,
    /// How many times it was edited.
    pub edits: u32,
}

#[derive(Default)]
struct State {
    calls: Vec<BotCall>,
    messages: Vec<FakeMessage>,
    updates: Vec<Value>,
    next_update: i64,
    next_message: i64,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeTelegram {
    /// Address bound.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

fn chat_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn buttons(markup: &Value) -> Vec<(String, String)> {
    markup["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .map(|b| {
            (
                b["text"].as_str().unwrap_or_default().to_owned(),
                b["callback_data"]
                    .as_str()
                    .or_else(|| b["url"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

fn ok(result: Value) -> Response<Full<Bytes>> {
    json_response(StatusCode::OK, json!({"ok": true, "result": result}))
}

fn json_response(status: StatusCode, v: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap()
}

fn message_json(m: &FakeMessage) -> Value {
    let chat: Value = m
        .chat_id
        .parse::<i64>()
        .map_or_else(|_| json!(m.chat_id), |n| json!(n));
    let mut v = json!({
        "message_id": m.message_id,
        "date": 1_700_000_000,
        "chat": {"id": chat, "type": "group"},
        "from": {"id": 999, "is_bot": true, "first_name": "TapBot", "username": "tap_bot"},
        "text": m.text,
    });
    if !m.buttons.is_empty() {
        v["reply_markup"] = json!({"inline_keyboard": [m.buttons.iter().map(|(t, d)| json!({"text": t, "callback_data": d})).collect::<Vec<_>>()]});
    }
    v
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some((token, method)) = path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
    else {
        return Ok(json_response(
            StatusCode::NOT_FOUND,
            json!({"ok": false, "error_code": 404, "description": "Not Found"}),
        ));
    };
    let (token, method) = (token.to_owned(), method.to_owned());
    state.lock().unwrap().calls.push(BotCall {
        token,
        method: method.clone(),
        body: body.clone(),
    });
    let resp = match method.as_str() {
        "getMe" => {
            ok(json!({"id": 999, "is_bot": true, "first_name": "TapBot", "username": "tap_bot"}))
        }
        "getUpdates" => {
            let offset = body["offset"].as_i64().unwrap_or(0);
            let wait =
                Duration::from_secs(body["timeout"].as_u64().unwrap_or(0)).min(MAX_POLL_WAIT);
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let notified = arrived.notified();
                {
                    let mut s = state.lock().unwrap();
                    // Telegram forgets updates below the offset: they are confirmed.
                    s.updates
                        .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
                    if !s.updates.is_empty() {
                        break ok(Value::Array(s.updates.clone()));
                    }
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    break ok(json!([]));
                }
            }
        }
        "sendMessage" => {
            let mut s = state.lock().unwrap();
            s.next_message += 1;
            let m = FakeMessage {
                chat_id: chat_text(&body["chat_id"]),
                message_id: s.next_message,
                text: body["text"].as_str().unwrap_or_default().to_owned(),
                buttons: buttons(&body["reply_markup"]),
                edits: 0,
            };
            let v = message_json(&m);
            s.messages.push(m);
            ok(v)
        }
        "editMessageText" | "editMessageReplyMarkup" => {
            let chat = chat_text(&body["chat_id"]);
            let id = body["message_id"].as_i64().unwrap_or(0);
            let mut s = state.lock().unwrap();
            match s
                .messages
                .iter_mut()
                .find(|m| m.chat_id == chat && m.message_id == id)
            {
                Some(m) => {
                    if method == "editMessageText" {
                        m.text = body["text"].as_str().unwrap_or_default().to_owned();
                    }
                    m.buttons = buttons(&body["reply_markup"]);
                    m.edits += 1;
                    ok(message_json(m))
                }
                None => json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"ok": false, "error_code": 400, "description": "Bad Request: message to edit not found"}),
                ),
            }
        }
        "answerCallbackQuery" | "setWebhook" | "deleteWebhook" => ok(json!(true)),
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"}),
        ),
    };
    Ok(resp)
}

impl FakeTelegram {
    /// Starts the fake on 127.0.0.1.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            next_update: 1000,
            ..State::default()
        }));
        let arrived = Arc::new(Notify::new());
        let (s2, a2) = (Arc::clone(&state), Arc::clone(&arrived));
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (s, a) = (Arc::clone(&s2), Arc::clone(&a2));
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(req, Arc::clone(&s), Arc::clone(&a)));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            state,
            arrived,
            task: Arc::new(task),
        }
    }

    /// `http://127.0.0.1:PORT` (the value of `TELEGRAM_API_URL`).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<BotCall> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Calls of one method.
    pub fn calls_of(&self, method: &str) -> Vec<BotCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Messages as the chats show them now.
    pub fn messages(&self) -> Vec<FakeMessage> {
        self.state.lock().unwrap().messages.clone()
    }

    /// Queues an update for `getUpdates`; returns its `update_id`.
    pub fn push_update(&self, mut update: Value) -> i64 {
        let id = {
            let mut s = self.state.lock().unwrap();
            s.next_update += 1;
            let id = s.next_update;
            update["update_id"] = json!(id);
            s.updates.push(update);
            id
        };
        self.arrived.notify_waiters();
        id
    }

    /// A callback query update: `from` pressed a button carrying `data` on
    /// message `message_id` of `chat_id`.
    pub fn callback_update(from: i64, chat_id: i64, message_id: i64, data: &str) -> Value {
        json!({
            "callback_query": {
                "id": format!("cq-{from}-{message_id}-{}", data.len()),
                "from": {"id": from, "is_bot": false, "first_name": "Human"},
                "chat_instance": "1",
                "message": {
                    "message_id": message_id,
                    "date": 1_700_000_000,
                    "chat": {"id": chat_id, "type": "group"},
                    "text": "",
                },
                "data": data,
            }
        })
    }

    /// Injects a button press; returns the update id.
    pub fn click(&self, from: i64, chat_id: i64, message_id: i64, data: &str) -> i64 {
        self.push_update(Self::callback_update(from, chat_id, message_id, data))
    }

    /// Injects a text message from `from` in a private chat.
    pub fn say(&self, from: i64, text: &str) -> i64 {
        self.push_update(json!({
            "message": {
                "message_id": 1,
                "date": 1_700_000_000,
                "chat": {"id": from, "type": "private"},
                "from": {"id": from, "is_bot": false, "first_name": "Human"},
                "text": text,
            }
        }))
    }

    /// True once no queued update is left unconfirmed (the bot polled past it).
    pub fn drained(&self) -> bool {
        self.state.lock().unwrap().updates.is_empty()
    }
}
