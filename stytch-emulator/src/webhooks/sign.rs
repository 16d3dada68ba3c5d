//! Svix (Standard Webhooks) signatures: the `whsec_` secret, message ids and `v1` signatures.
//!
//! Written here from Svix's specification, independently of any receiver's code: HMAC-SHA256
//! keyed with the base64-decoded part of the secret after `whsec_`, over
//! `{msg_id}.{timestamp}.{body}`, base64-encoded and prefixed `v1,`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::EmulatorError;

/// The prefix of Svix signing secrets.
const PREFIX: &str = "whsec_";
/// Length of a generated secret's key, in bytes (Svix's are 24).
const KEY_BYTES: usize = 24;

/// A Svix endpoint signing secret, `whsec_<base64 key>`. `Debug` prints `WebhookSecret(..)`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    text: String,
    key: Vec<u8>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

impl WebhookSecret {
    /// A fresh random secret (24 random bytes, like the secrets Svix generates).
    pub fn generate() -> Self {
        let mut key = vec![0u8; KEY_BYTES];
        aws_lc_rs::rand::fill(&mut key).expect("system RNG failed");
        Self {
            text: format!("{PREFIX}{}", STANDARD.encode(&key)),
            key,
        }
    }

    /// Parses `whsec_<base64>`.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::InvalidWebhookSecret`] when the prefix is missing or the rest is not
    /// non-empty standard base64 (the message never contains the secret).
    pub fn parse(text: &str) -> Result<Self, EmulatorError> {
        let key = text
            .strip_prefix(PREFIX)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|key| !key.is_empty())
            .ok_or(EmulatorError::InvalidWebhookSecret)?;
        Ok(Self {
            text: text.to_owned(),
            key,
        })
    }

    /// The secret as a receiver is configured with it (`whsec_…`). Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// The `v1,<base64>` signature of a message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        sign(&self.key, msg_id, timestamp, body)
    }
}

/// `v1,` + base64(HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")).
pub(crate) fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// A Svix-style message id: `msg_` and 27 random alphanumerics.
pub(crate) fn new_msg_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut bytes = [0u8; 27];
    aws_lc_rs::rand::fill(&mut bytes).expect("system RNG failed");
    let id: String = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    format!("msg_{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_svixs_published_test_vector() {
        // The vector of Svix's official libraries: svix/svix-webhooks,
        // php/tests/WebhookTest.php, testSignFunctionWorks (commit 00fdb82e), the same values
        // the Standard Webhooks reference libraries test. If this failed, no Svix receiver
        // (ours or an official library) would accept the emulator's webhooks.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn signs_the_svix_rust_librarys_test_vector() {
        // A second vector, from svix/svix-webhooks rust/src/webhooks.rs, test_sign (commit
        // 0d9cfaa6). If this failed, the key decoding or the signed content would be wrong in
        // a way one vector alone might not show.
        let secret = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_eq!(
            secret.sign(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1_649_367_553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn secrets_parse_strictly_and_never_show() {
        // If this failed, a mistyped secret would sign with a wrong key silently, or a secret
        // would leak through Debug.
        for bad in [
            "",
            "whsec_",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not base64!",
        ] {
            assert!(WebhookSecret::parse(bad).is_err(), "{bad}");
        }
        let generated = WebhookSecret::generate();
        let text = generated.expose_secret().to_owned();
        assert!(text.starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&text).unwrap(), generated);
        assert_ne!(generated, WebhookSecret::generate());
        assert_eq!(format!("{generated:?}"), "WebhookSecret(..)");
    }

    #[test]
    fn msg_ids_look_like_svixs() {
        // If this broke, receivers validating Svix's id format would reject emulator messages.
        let id = new_msg_id();
        assert_eq!(id.len(), 31);
        assert!(id[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(id, new_msg_id());
    }
}
