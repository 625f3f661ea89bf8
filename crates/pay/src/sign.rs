//! HMAC signatures as the providers specify them: hex of HMAC-SHA256 (MoMo) or HMAC-SHA512
//! (VNPay) over a documented string of the request's fields, checked in constant time.

use ring::hmac;

/// Lower-case hex of HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256_hex(key: &str, data: &str) -> String {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    hex::encode(hmac::sign(&k, data.as_bytes()).as_ref())
}

/// Whether `signature` (hex, either case) is HMAC-SHA256 of `data` under `key`; constant time.
pub fn verify_sha256_hex(key: &str, data: &str, signature: &str) -> bool {
    let Ok(tag) = hex::decode(signature.trim()) else {
        return false;
    };
    let k = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    hmac::verify(&k, data.as_bytes(), &tag).is_ok()
}

/// Lower-case hex of HMAC-SHA512 of `data` under `key`.
pub fn hmac_sha512_hex(key: &str, data: &str) -> String {
    let k = hmac::Key::new(hmac::HMAC_SHA512, key.as_bytes());
    hex::encode(hmac::sign(&k, data.as_bytes()).as_ref())
}

/// Whether `signature` (hex, either case) is HMAC-SHA512 of `data` under `key`; constant time.
pub fn verify_sha512_hex(key: &str, data: &str, signature: &str) -> bool {
    let Ok(tag) = hex::decode(signature.trim()) else {
        return false;
    };
    let k = hmac::Key::new(hmac::HMAC_SHA512, key.as_bytes());
    hmac::verify(&k, data.as_bytes(), &tag).is_ok()
}

/// `k1=v1&k2=v2...` in the given order, values as they are (the providers sign raw values).
pub fn raw(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe".
        assert_eq!(
            hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn rfc4231_case_2_sha512() {
        assert_eq!(
            hmac_sha512_hex("Jefe", "what do ya want for nothing?"),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
        let sig = hmac_sha512_hex("k", "a=1");
        assert!(verify_sha512_hex("k", "a=1", &sig));
        assert!(!verify_sha512_hex("k", "a=2", &sig));
    }

    #[test]
    fn verify_refuses_a_changed_message_key_or_tag() {
        let sig = hmac_sha256_hex("k", "amount=1000&orderId=A");
        assert!(verify_sha256_hex("k", "amount=1000&orderId=A", &sig));
        assert!(verify_sha256_hex(
            "k",
            "amount=1000&orderId=A",
            &sig.to_uppercase()
        ));
        assert!(!verify_sha256_hex("k", "amount=1001&orderId=A", &sig));
        assert!(!verify_sha256_hex("K", "amount=1000&orderId=A", &sig));
        assert!(!verify_sha256_hex("k", "amount=1000&orderId=A", "zz"));
        assert!(!verify_sha256_hex("k", "amount=1000&orderId=A", &sig[2..]));
    }
}
