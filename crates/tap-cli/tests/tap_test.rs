//! `tap test`: steps as they happen, a write that needs a human says how to
//! approve it and who did, and the throwaway agent never outlives the command
//! (Ctrl-C included).
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

use tap_testkit::{FakeUpstream, TapHome};

const SECRET: &str = "s3cr3t-value-for-tap-test";

fn home(up: &FakeUpstream) -> TapHome {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    tap
}

fn throwaway_agents(tap: &TapHome) -> usize {
    tap.json(&["agent", "list"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["id"].as_str().is_some_and(|i| i.starts_with("tap-test-")))
        .count()
}

/// Streams the child's stdout lines into a channel.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (bounded) for a line containing `needle`; returns it.
fn wait_for(rx: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) -> String {
    loop {
        let l = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no line with {needle:?}; saw {seen:#?}"));
        seen.push(l.clone());
        if l.contains(needle) {
            return l;
        }
    }
}

/// Waits (bounded) for the child to exit; its status code.
fn exit_code(child: &mut Child) -> Option<i32> {
    for _ in 0..600 {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("tap test did not exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_passes_every_step_and_leaves_no_agent() {
    let up = FakeUpstream::start().await;
    let tap = home(&up);
    let served = tap.serve();
    let target = format!("{}/echo/read", up.base());
    let out = tokio::task::block_in_place(|| {
        tap.run(&[
            "test",
            "echo",
            "--target",
            &target,
            "--proxy-url",
            &served.url,
        ])
    });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in ["auth", "policy", "inject", "upstream", "scrub"] {
        assert!(text.contains(step), "{step} missing: {text}");
    }
    assert!(!text.contains(SECRET));
    assert_eq!(tokio::task::block_in_place(|| throwaway_agents(&tap)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_says_how_to_approve_it_and_names_the_approver() {
    let up = FakeUpstream::start().await;
    let tap = home(&up);
    let served = tap.serve();
    let target = format!("{}/echo/write", up.base());
    let mut child = tap.spawn(&[
        "test",
        "echo",
        "--method",
        "POST",
        "--target",
        &target,
        "--proxy-url",
        &served.url,
        "--timeout",
        "60",
    ]);
    let rx = lines(&mut child);
    let mut seen = Vec::new();
    let waiting = wait_for(&rx, "waiting for approval", &mut seen);
    let txn = waiting
        .split("tap approve ")
        .nth(1)
        .and_then(|r| r.split('`').next())
        .unwrap()
        .to_owned();
    let owner = tap.json(&["member", "list"])[0]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let ok = tokio::task::block_in_place(|| tap.run(&["approve", &txn]));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let approved = wait_for(&rx, "approved by", &mut seen);
    assert!(approved.contains(&owner), "{approved}");
    assert_eq!(
        tokio::task::block_in_place(|| exit_code(&mut child)),
        Some(0),
        "{seen:#?}"
    );
    assert_eq!(tokio::task::block_in_place(|| throwaway_agents(&tap)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_while_waiting_it_removes_its_agent() {
    let up = FakeUpstream::start().await;
    let tap = home(&up);
    let served = tap.serve();
    let target = format!("{}/echo/write", up.base());
    let mut child = tap.spawn(&[
        "test",
        "echo",
        "--method",
        "POST",
        "--target",
        &target,
        "--proxy-url",
        &served.url,
    ]);
    let rx = lines(&mut child);
    let mut seen = Vec::new();
    wait_for(&rx, "waiting for approval", &mut seen);
    assert_eq!(tokio::task::block_in_place(|| throwaway_agents(&tap)), 1);
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let code = tokio::task::block_in_place(|| exit_code(&mut child));
    assert_ne!(code, Some(0), "an interrupted test is not a success");
    assert_eq!(
        tokio::task::block_in_place(|| throwaway_agents(&tap)),
        0,
        "the throwaway agent is gone after Ctrl-C"
    );
}
