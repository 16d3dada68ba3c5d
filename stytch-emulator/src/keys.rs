//! The emulator's RSA signing keys: generation, JWKS entries, JWT minting and verification.
//!
//! JWTs are signed with aws-lc-rs directly (RS256 = RSASSA-PKCS1-v1_5 with SHA-256), so that
//! the private key never needs re-parsing per signature.

use std::sync::{Arc, RwLock};

use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

/// One RSA key pair with its key id.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pair: KeyPair,
    n: Vec<u8>,
    e: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh 2048-bit RSA key named `jwk-{env}-<uuid>`.
    pub(crate) fn generate(env: &str) -> Self {
        // Key generation only fails when the system RNG does: nothing sensible to do then.
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation failed");
        let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        Self {
            kid: format!("jwk-{env}-{}", uuid::Uuid::new_v4()),
            pair,
            n: components.n,
            e: components.e,
        }
    }

    /// The public key as one entry of Stytch's JWKS.
    pub(crate) fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "key_ops": ["verify"],
            "alg": "RS256",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&self.n),
            "e": URL_SAFE_NO_PAD.encode(&self.e),
            "x5c": [],
            "x5tS256": "",
        })
    }

    /// Signs `claims` as an RS256 JWT with this key's `kid`.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"});
        let mut out = String::with_capacity(1024);
        URL_SAFE_NO_PAD.encode_string(header.to_string(), &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut out);
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair
            .sign(&RSA_PKCS1_SHA256, &rng, out.as_bytes(), &mut sig)
            .expect("RSA signing failed");
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&sig, &mut out);
        out
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        PublicKeyComponents {
            n: &self.n[..],
            e: &self.e[..],
        }
        .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
        .is_ok()
    }
}

/// Why a presented JWT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwtError {
    /// Not a JWT at all (segments, base64, JSON): Stytch's `unable_to_parse_session_jwt`.
    Malformed,
    /// Well-formed, but unknown `kid`, wrong algorithm or bad signature: `session_not_found`.
    Unverifiable,
}

/// The current and previous keys, newest first.
#[derive(Debug)]
pub(crate) struct KeyRing {
    env: String,
    keys: RwLock<Arc<Vec<Arc<SigningKey>>>>,
}

impl KeyRing {
    pub(crate) fn new(env: &str) -> Self {
        Self {
            env: env.to_owned(),
            keys: RwLock::new(Arc::new(vec![Arc::new(SigningKey::generate(env))])),
        }
    }

    fn snapshot(&self) -> Arc<Vec<Arc<SigningKey>>> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The key new JWTs are signed with.
    pub(crate) fn current(&self) -> Arc<SigningKey> {
        self.snapshot()[0].clone()
    }

    /// Generates a new key (outside any lock), makes it current and returns its kid. Old keys
    /// stay listed.
    pub(crate) fn rotate(&self) -> String {
        let key = Arc::new(SigningKey::generate(&self.env));
        let kid = key.kid.clone();
        let mut guard = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut keys = Vec::with_capacity(guard.len() + 1);
        keys.push(key);
        keys.extend(guard.iter().cloned());
        *guard = Arc::new(keys);
        kid
    }

    /// The JWKS `keys` array, newest first.
    pub(crate) fn jwks(&self) -> Vec<Value> {
        self.snapshot().iter().map(|k| k.jwk()).collect()
    }

    /// Checks a JWT's structure and signature (not its `exp`) and returns its claims.
    pub(crate) fn verify(&self, jwt: &str) -> Result<Map<String, Value>, JwtError> {
        let (header, claims, signature) = split_jwt(jwt)?;
        let kid = header.get("kid").and_then(Value::as_str);
        let alg = header.get("alg").and_then(Value::as_str);
        if alg != Some("RS256") {
            return Err(JwtError::Unverifiable);
        }
        let Some(kid) = kid else {
            return Err(JwtError::Unverifiable);
        };
        let keys = self.snapshot();
        let key = keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(JwtError::Unverifiable)?;
        let signed_len = jwt.rfind('.').unwrap_or(0);
        if key.verify(&jwt.as_bytes()[..signed_len], &signature) {
            Ok(claims)
        } else {
            Err(JwtError::Unverifiable)
        }
    }
}

/// Splits and decodes a compact JWS: header and claims must be JSON objects.
fn split_jwt(jwt: &str) -> Result<(Map<String, Value>, Map<String, Value>, Vec<u8>), JwtError> {
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let decode_obj = |part: &str| -> Result<Map<String, Value>, JwtError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| JwtError::Malformed)?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(JwtError::Malformed),
        }
    };
    let header = decode_obj(h)?;
    let claims = decode_obj(c)?;
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    Ok((header, claims, signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_jwt_verifies_and_tampering_is_caught() {
        // If this broke, the emulator would reject its own JWTs or accept forged ones.
        let ring = KeyRing::new("test");
        let jwt = ring.current().sign(&json!({"sub": "member-test-1"}));
        assert_eq!(
            ring.verify(&jwt).unwrap().get("sub"),
            Some(&json!("member-test-1"))
        );
        let (head, _) = jwt.rsplit_once('.').unwrap();
        let forged = format!("{head}.{}", URL_SAFE_NO_PAD.encode([0u8; 256]));
        assert_eq!(ring.verify(&forged), Err(JwtError::Unverifiable));
        assert_eq!(ring.verify("not-a-jwt"), Err(JwtError::Malformed));
        assert_eq!(ring.verify("a.b.c"), Err(JwtError::Malformed));
    }

    #[test]
    fn rotation_keeps_old_keys_verifying() {
        // If this broke, a key rotation would log everybody out at once.
        let ring = KeyRing::new("test");
        let old = ring.current().sign(&json!({"sub": "x"}));
        let kid = ring.rotate();
        assert_eq!(ring.current().kid, kid);
        assert_eq!(ring.jwks().len(), 2);
        assert_eq!(ring.jwks()[0]["kid"], json!(kid));
        assert!(ring.verify(&old).is_ok());
    }
}
