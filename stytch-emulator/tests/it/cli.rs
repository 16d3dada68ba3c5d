//! The `stytch-emulator` binary's command line, run as a user runs it.
//!
//! If these fail, `--help` misleads or fails, a typo goes unexplained, or a secret leaks into
//! the terminal.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stytch-emulator"));
    // The test's own environment must not configure the emulator under test.
    for var in [
        "STYTCH_EMULATOR_SECRET",
        "STYTCH_EMULATOR_WEBHOOK_SECRET",
        "STYTCH_EMULATOR_LISTEN",
        "STYTCH_EMULATOR_PROJECT_ID",
    ] {
        command.env_remove(var);
    }
    command
}

#[test]
fn help_exits_0_describes_every_flag_and_hides_secret_values() {
    // If this failed, `--help` would be an error again, leave flags undocumented, or print
    // the secrets set in the environment.
    let out = binary()
        .arg("--help")
        .env("STYTCH_EMULATOR_SECRET", "secret-value-from-env")
        .env(
            "STYTCH_EMULATOR_WEBHOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--project-id",
        "--secret",
        "--webhook-url",
        "--webhook-secret",
        "--version",
        "STYTCH_EMULATOR_SECRET",
        "STYTCH_EMULATOR_WEBHOOK_SECRET",
    ] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
    assert!(!help.contains("secret-value-from-env"), "{help}");
    assert!(!help.contains("MfKQ9r8"), "{help}");
}

#[test]
fn an_unknown_flag_exits_2_naming_it() {
    // If this failed, a typo would be reported as "needs a value" (the old parser) or
    // silently ignored.
    let out = binary().arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("unexpected argument '--bogus'"), "{stderr}");
}

#[test]
fn a_bad_webhook_secret_from_the_environment_is_refused_without_echo() {
    // If this failed, the environment variable would be ignored, or its (secret) value
    // printed back in the error.
    let out = binary()
        .env("STYTCH_EMULATOR_WEBHOOK_SECRET", "whsec_not?base64")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--webhook-secret"), "{stderr}");
    assert!(!stderr.contains("not?base64"), "{stderr}");
}

#[test]
fn secrets_from_the_environment_configure_the_running_emulator() {
    // If this failed, secrets could only be passed as flags, which every local user sees in
    // `ps`.
    let mut child = binary()
        .args(["--listen", "127.0.0.1:0"])
        .env("STYTCH_EMULATOR_SECRET", "secret-test-from-env")
        .env(
            "STYTCH_EMULATOR_WEBHOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .take_while(|l| !l.starts_with("organization "))
        .collect();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        lines.contains(&"  STYTCH_SECRET=secret-test-from-env".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines
            .contains(&"  STYTCH_WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()),
        "{lines:?}"
    );
}
