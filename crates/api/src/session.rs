//! Temporary credentials (STS AssumeRole and GetSessionToken) as self-verifying tokens.
//!
//! A session is not stored. Its session token carries its claims — the access key ID, when it
//! expires, whose session it is (a role or a user by ID, or root), the session name and tags —
//! and an HMAC-SHA256 over them with the account's token key, a 32-byte key from the CSPRNG kept
//! in the store ([`crate::identity::TOKEN_KEY_KIND`]) and loaded into the identity index. The
//! session's secret access key is derived from the same key and the access key ID, so nothing
//! per session is written and sessions survive restarts. The gate checks the token's MAC, that
//! it is the token of the access key the request is signed with, its expiry, and that the role
//! (or user) it names still exists *in the index* — a deleted role's sessions stop working at
//! the index's next revision.
//!
//! Token: `TRLS1.` + base64url(claims JSON) + `.` + base64url(HMAC(key, "token\0" + claims)).
//! The claims are readable by whoever holds the token (they say nothing its holder does not
//! already know); they cannot be changed without the key.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::identity::Tag;

const PREFIX: &str = "TRLS1.";

/// Whose session a token is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    /// An assumed role, by role ID.
    Role,
    /// A user's GetSessionToken, by user ID.
    User,
    /// Root's GetSessionToken.
    Root,
}

/// What a session token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The session's access key ID (`ASIA…`).
    pub access_key_id: String,
    /// When it expires (Unix seconds).
    pub expires: i64,
    pub subject: Subject,
    /// The role ID or user ID (empty for root).
    pub id: String,
    /// The role session name (AssumeRole only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

/// HMAC-SHA256 of `message` under `key`.
fn mac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut m = mac(key);
    m.update(message);
    m.finalize().into_bytes().into()
}

/// The secret access key of a session's access key ID (40 characters).
pub fn secret(key: &[u8], access_key_id: &str) -> String {
    let mac = hmac_sha256(key, format!("secret\0{access_key_id}").as_bytes());
    let mut text = STANDARD.encode(mac);
    text.truncate(40);
    text
}

/// The session token of `claims`.
pub fn mint(key: &[u8], claims: &Claims) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let mac = hmac_sha256(key, format!("token\0{body}").as_bytes());
    format!("{PREFIX}{body}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// The claims of a token signed with `key`; `None` for anything else.
pub fn verify(key: &[u8], token: &str) -> Option<Claims> {
    let (body, tag) = token.strip_prefix(PREFIX)?.split_once('.')?;
    let given = URL_SAFE_NO_PAD.decode(tag).ok()?;
    let mut expected = mac(key);
    expected.update(format!("token\0{body}").as_bytes());
    // Constant-time comparison.
    expected.verify_slice(&given).ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn tokens_verify_only_unchanged_and_with_their_key() {
        let key = [7u8; 32];
        let claims = Claims {
            access_key_id: "ASIAEXAMPLE".into(),
            expires: 1_900_000_000,
            subject: Subject::Role,
            id: "AROAEXAMPLE".into(),
            session_name: "s1".into(),
            tags: vec![Tag {
                key: "team".into(),
                value: "rates".into(),
            }],
        };
        let token = mint(&key, &claims);
        assert_eq!(verify(&key, &token), Some(claims.clone()));
        assert_eq!(verify(&[8u8; 32], &token), None);
        // Any change to the claims or the MAC breaks it.
        let (body, mac) = token.strip_prefix(PREFIX).unwrap().split_once('.').unwrap();
        let mut forged = claims;
        forged.id = "AROAOTHER".into();
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(verify(&key, &format!("{PREFIX}{forged_body}.{mac}")), None);
        let mut flipped = mac.to_string().into_bytes();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(verify(&key, &format!("{PREFIX}{body}.{flipped}")), None);
        assert_eq!(verify(&key, ""), None);
        assert_eq!(verify(&key, "TRLS1.x"), None);
        // Secrets differ per key ID and per key.
        assert_ne!(secret(&key, "ASIA1"), secret(&key, "ASIA2"));
        assert_ne!(secret(&key, "ASIA1"), secret(&[8u8; 32], "ASIA1"));
        assert_eq!(secret(&key, "ASIA1").len(), 40);
    }
}
