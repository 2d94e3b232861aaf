//! Check-in passes a door can check offline: a compact JWS (RFC 7515) signed with Ed25519
//! (RFC 8037, algorithm `EdDSA`), whose public keys are published as a JWK set. Any JOSE
//! library, or `drawbridge pass verify`, checks a pass with the public keys alone, so a door
//! device holds no secret and a stolen one can forge nothing.
//!
//! Keys rotate as the HMAC tokens' do: the last listed key signs, every listed key verifies and
//! is published; a key taken off the list is retired, and the passes it signed stop verifying.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::token::{check_key_ids, KeyringError, TokenError, MAX_TOKEN_LEN};

/// The JWS algorithm of every pass.
const ALGORITHM: &str = "EdDSA";

/// A named Ed25519 key. `Debug` never prints the seed.
#[derive(Clone)]
pub struct PassSigningKey {
    /// Public name of the key, written into every pass it signs (`kid`).
    pub id: String,
    /// The private key's 32 random bytes.
    pub seed: [u8; 32],
}

impl fmt::Debug for PassSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassSigningKey")
            .field("id", &self.id)
            .field("seed", &format_args!("<redacted>"))
            .finish()
    }
}

/// The keys a gateway signs passes with: the newest signs, all are published.
pub struct PassKeyring {
    signing_id: String,
    signing: SigningKey,
    public: PublicPassKeys,
}

impl fmt::Debug for PassKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassKeyring")
            .field("signing_id", &self.signing_id)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// The public keys passes are checked with: all a door needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicPassKeys {
    keys: Vec<(String, VerifyingKey)>,
}

/// A JWK set of Ed25519 public keys (RFC 7517, RFC 8037), as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys, oldest first.
    pub keys: Vec<Jwk>,
}

/// One Ed25519 public key as a JWK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// The key's id, as in the passes it signs.
    pub kid: String,
    /// The public key, base64url without padding.
    pub x: String,
    /// Always `EdDSA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Always `sig`.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
}

/// Why a JWK set cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkSetError {
    /// Not JSON of a JWK set.
    #[error("not a JWK set: {0}")]
    Malformed(String),
    /// A key that is not an Ed25519 public key.
    #[error("key {kid:?} is not an Ed25519 public key (kty OKP, crv Ed25519, 32-byte x)")]
    NotEd25519 {
        /// The key's id.
        kid: String,
    },
    /// Ids that cannot appear in passes, or appear twice.
    #[error(transparent)]
    Ids(#[from] KeyringError),
}

#[derive(Serialize, Deserialize)]
struct Header<'a> {
    alg: &'a str,
    kid: &'a str,
}

#[derive(Serialize, Deserialize)]
struct Payload<C> {
    iat: i64,
    exp: i64,
    #[serde(flatten)]
    claims: C,
}

impl PassKeyring {
    /// The keyring of `keys`, oldest first: the last one signs.
    pub fn new(keys: Vec<PassSigningKey>) -> Result<PassKeyring, KeyringError> {
        check_key_ids(keys.iter().map(|key| key.id.as_str()))?;
        let newest = keys.last().ok_or(KeyringError::Empty)?;
        let signing = SigningKey::from_bytes(&newest.seed);
        let public = PublicPassKeys {
            keys: keys
                .iter()
                .map(|key| (key.id.clone(), SigningKey::from_bytes(&key.seed).verifying_key()))
                .collect(),
        };
        Ok(PassKeyring {
            signing_id: newest.id.clone(),
            signing,
            public,
        })
    }

    /// A pass carrying `claims`, valid from `issued_at` until `expires_at` (unix seconds).
    pub fn sign<C: Serialize>(&self, claims: &C, issued_at: i64, expires_at: i64) -> String {
        let header = Header {
            alg: ALGORITHM,
            kid: &self.signing_id,
        };
        let payload = Payload {
            iat: issued_at,
            exp: expires_at,
            claims,
        };
        let header = serde_json::to_vec(&header).expect("a header serializes");
        let payload = serde_json::to_vec(&payload).expect("a pass's claims serialize");
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = self.signing.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    /// The keys its passes are checked with, for publishing and for the server's own checks.
    pub fn public(&self) -> &PublicPassKeys {
        &self.public
    }
}

impl PublicPassKeys {
    /// The keys as a JWK set, for `/.well-known/jwks.json`.
    pub fn jwk_set(&self) -> JwkSet {
        JwkSet {
            keys: self
                .keys
                .iter()
                .map(|(kid, key)| Jwk {
                    kty: "OKP".into(),
                    crv: "Ed25519".into(),
                    kid: kid.clone(),
                    x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
                    alg: Some(ALGORITHM.into()),
                    usage: Some("sig".into()),
                })
                .collect(),
        }
    }

    /// The keys of a published JWK set (keys of other types are refused, not skipped: a door
    /// should not silently check fewer keys than it was given).
    pub fn from_jwk_set(text: &str) -> Result<PublicPassKeys, JwkSetError> {
        let set: JwkSet = serde_json::from_str(text).map_err(|e| JwkSetError::Malformed(e.to_string()))?;
        check_key_ids(set.keys.iter().map(|key| key.kid.as_str()))?;
        let keys = set
            .keys
            .into_iter()
            .map(|jwk| {
                let not_ed25519 = || JwkSetError::NotEd25519 { kid: jwk.kid.clone() };
                if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
                    return Err(not_ed25519());
                }
                let bytes: [u8; 32] = URL_SAFE_NO_PAD
                    .decode(&jwk.x)
                    .ok()
                    .and_then(|bytes| bytes.try_into().ok())
                    .ok_or_else(not_ed25519)?;
                let key = VerifyingKey::from_bytes(&bytes).map_err(|_| not_ed25519())?;
                Ok((jwk.kid.clone(), key))
            })
            .collect::<Result<_, _>>()?;
        Ok(PublicPassKeys { keys })
    }

    /// The claims of a genuine pass signed by one of these keys and valid at `now` (unix
    /// seconds). An altered pass, one signed by another key or a retired one, and an expired
    /// one are refused.
    pub fn verify<C: DeserializeOwned>(&self, token: &str, now: i64) -> Result<C, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (header, payload) = input.split_once('.').ok_or(TokenError::Malformed)?;
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed);
        let header_json = decode(header)?;
        let header: Header<'_> = serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
        if header.alg != ALGORITHM {
            return Err(TokenError::Malformed);
        }
        let key = self
            .keys
            .iter()
            .find(|(id, _)| id == header.kid)
            .map(|(_, key)| key)
            .ok_or(TokenError::UnknownKey)?;
        let signature: [u8; 64] = decode(signature)?.try_into().map_err(|_| TokenError::Malformed)?;
        key.verify(input.as_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| TokenError::BadSignature)?;
        let payload: Payload<C> =
            serde_json::from_slice(&decode(payload)?).map_err(|_| TokenError::BadClaims)?;
        if now >= payload.exp {
            return Err(TokenError::Expired);
        }
        Ok(payload.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> PassSigningKey {
        PassSigningKey {
            id: id.into(),
            seed: [byte; 32],
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Claims {
        b: String,
    }

    fn claims() -> Claims {
        Claims { b: "booking".into() }
    }

    #[test]
    fn a_pass_verifies_offline_with_the_published_keys_only() {
        let keyring = PassKeyring::new(vec![key("p1", 1)]).unwrap();
        let pass = keyring.sign(&claims(), 100, 200);
        let published = serde_json::to_string(&keyring.public().jwk_set()).unwrap();
        assert!(
            !published.contains(&URL_SAFE_NO_PAD.encode([1u8; 32])),
            "no private key"
        );
        let door = PublicPassKeys::from_jwk_set(&published).unwrap();
        assert_eq!(door.verify::<Claims>(&pass, 150), Ok(claims()));
        assert_eq!(door.verify::<Claims>(&pass, 200), Err(TokenError::Expired));
    }

    #[test]
    fn passes_of_unknown_retired_or_altered_keys_do_not_verify() {
        let old = PassKeyring::new(vec![key("p1", 1)]).unwrap();
        let pass = old.sign(&claims(), 100, 200);
        // Rotated: the new key signs, the old one still verifies.
        let rotated = PassKeyring::new(vec![key("p1", 1), key("p2", 2)]).unwrap();
        assert_eq!(rotated.public().verify::<Claims>(&pass, 150), Ok(claims()));
        assert!(rotated
            .sign(&claims(), 100, 200)
            .starts_with(&URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","kid":"p2"}"#)));
        // Retired: taken off the list.
        let retired = PassKeyring::new(vec![key("p2", 2)]).unwrap();
        assert_eq!(
            retired.public().verify::<Claims>(&pass, 150),
            Err(TokenError::UnknownKey)
        );
        // Another key under the same id.
        let impostor = PassKeyring::new(vec![key("p1", 9)]).unwrap();
        assert_eq!(
            impostor.public().verify::<Claims>(&pass, 150),
            Err(TokenError::BadSignature)
        );
        // Altered claims, signature kept.
        let (header, rest) = pass.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(br#"{"iat":100,"exp":200,"b":"another"}"#);
        let forged = format!("{header}.{forged_payload}.{signature}");
        assert_eq!(
            old.public().verify::<Claims>(&forged, 150),
            Err(TokenError::BadSignature)
        );
        // Not a pass at all, or another algorithm.
        assert_eq!(
            old.public().verify::<Claims>("x.y", 150),
            Err(TokenError::Malformed)
        );
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"p1"}"#);
        assert_eq!(
            old.public().verify::<Claims>(&format!("{none}.{rest}"), 150),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn a_jwk_set_of_another_kind_of_key_is_refused() {
        let keyring = PassKeyring::new(vec![key("p1", 1)]).unwrap();
        let mut set = keyring.public().jwk_set();
        set.keys[0].crv = "P-256".into();
        let error = PublicPassKeys::from_jwk_set(&serde_json::to_string(&set).unwrap()).unwrap_err();
        assert_eq!(error, JwkSetError::NotEd25519 { kid: "p1".into() });
        assert!(matches!(
            PublicPassKeys::from_jwk_set("{}"),
            Err(JwkSetError::Malformed(_))
        ));
        assert!(matches!(
            PassKeyring::new(vec![key("p1", 1), key("p1", 2)]),
            Err(KeyringError::DuplicateId { .. })
        ));
    }
}
