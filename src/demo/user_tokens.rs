//! The demo's Backstage user tokens (what OAuth clients send): a signing key made at start, its
//! JWKS served by the embedded upstream as Backstage's auth backend does, and user tokens for the
//! traffic generator: a signed-in VS Code user, and a Claude Code user whose token expired.

use std::sync::OnceLock;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// Where Backstage's auth backend publishes its keys.
pub(super) const JWKS_PATH: &str = "/api/auth/.well-known/jwks.json";
const KID: &str = "mcp-tap-demo-key";

pub(super) struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub jwks: String,
}

/// The demo's one signing key, made on first use.
pub(super) fn signer() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("a P-256 key");
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("the new key");
        // An uncompressed point: 0x04, then x and y.
        let point = pair.public_key().as_ref();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": KID, "alg": "ES256", "use": "sig"}]});
        Signer {
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            decoding: DecodingKey::from_ec_components(&x, &y).expect("the new key's point"),
            jwks: jwks.to_string(),
        }
    })
}

fn now() -> i64 {
    i64::try_from(crate::clock::unix_secs()).unwrap_or(i64::MAX)
}

impl Signer {
    /// A user token for `user`, expiring `expires_in` seconds from now (negative: expired).
    pub(super) fn token(&self, user: &str, expires_in: i64) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(crate::identity::jwt::USER_TOKEN_TYPE.into());
        header.kid = Some(KID.into());
        let iat = now().min(now() + expires_in - 60);
        let claims = serde_json::json!({"iss": "http://backstage-demo/api/auth", "sub": user, "aud": "backstage", "iat": iat, "exp": now() + expires_in});
        jsonwebtoken::encode(&header, &claims, &self.encoding).expect("a signed token")
    }

    /// Whether Backstage would accept `token` (signed by this key, in date).
    pub(super) fn verify(&self, token: &str) -> bool {
        let mut v = Validation::new(Algorithm::ES256);
        v.validate_aud = false;
        v.leeway = 0;
        jsonwebtoken::decode::<serde_json::Value>(token, &self.decoding, &v).is_ok()
    }
}
