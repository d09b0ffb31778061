//! `tap completions SHELL` and `tap man`: generated from the clap definitions.

use tap_testkit::TapHome;

#[test]
fn completions_and_the_man_page_name_every_command() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    for shell in ["bash", "zsh", "fish"] {
        let out = tap.ok(&["completions", shell]);
        for sub in ["serve", "agent", "pending", "policy", "audit"] {
            assert!(out.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let man = tap.ok(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH tap"),
        "roff: {man:.200}"
    );
    assert!(
        man.contains("serve") && man.contains("TAP_DATA_DIR"),
        "{man:.400}"
    );
    let bad = tap.run(&["completions", "cmd.exe"]);
    assert!(!bad.status.success(), "an unknown shell is refused");
    assert!(
        !tap.db_path().exists(),
        "generating completions touches no store"
    );
}

#[test]
fn serve_help_lists_every_environment_variable_with_its_default() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let help = tap.ok(&["serve", "--help"]);
    for v in [
        "TAP_DATA_DIR",
        "TAP_MASTER_KEY_FILE",
        "TAP_SYNC_APPROVAL_WAIT_SECS",
        "TELEGRAM_API_URL",
        "TAP_TRUSTED_PROXIES",
    ] {
        assert!(help.contains(v), "{v} missing from serve --help: {help}");
    }
    assert!(help.contains("[20]"), "defaults are shown: {help}");
}
