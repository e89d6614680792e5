//! Console passwords: the policy a new password must meet, and argon2id hashing.
//!
//! Input is a password as typed; output is a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$…`) that the daemon stores instead of it.
//! The cost follows OWASP's argon2id recommendation: 19 MiB of memory, two passes,
//! one lane, so one hash or verification takes tens of milliseconds.
//!
//! Failure modes:
//! - [`check_policy`] refuses a password with a message a person can act on.
//! - [`hash`] fails only if the operating system's random source does (no salt).
//! - [`verify`] never fails: a malformed or foreign hash simply does not match.
//!
//! Nothing here keeps a password, and no error carries one, so no `Debug` output
//! can print one. [`dummy_verify`] spends the time of a real verification, so
//! that a sign-in for an unknown name takes as long as one with a wrong password.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

/// Argon2 memory cost in KiB (19 MiB).
pub const MEMORY_KIB: u32 = 19_456;
/// Argon2 passes over memory.
pub const PASSES: u32 = 2;
/// Argon2 lanes.
pub const LANES: u32 = 1;

/// The fewest characters a password may have.
pub const MIN_CHARS: usize = 12;
/// The most bytes a password may have (argon2 takes any length; this bounds the work).
pub const MAX_BYTES: usize = 1024;
/// User names shorter than this are not looked for in the password: refusing
/// every password with an `a` in it for user `a` would protect nothing.
const MIN_NAME_CHARS: usize = 3;

/// The hash of 24 random bytes that were then thrown away, made with the
/// parameters above: verifying against it costs what a real verification costs.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZSBmaXhlZCBzYWx0IGZvciB0aW1pbmc$SG62j563/EyqzpyHtQl35OttHmx0upmo16U2usoed5Y";

/// Why a password was refused or could not be hashed. Never holds the password.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_CHARS} characters long")]
    TooShort,
    #[error("the password must be at most {MAX_BYTES} bytes long")]
    TooLong,
    #[error("the password must not contain the user name")]
    ContainsUserName,
    #[error("the password must not be one character repeated")]
    OneCharacter,
    #[error("the password could not be hashed: {0}")]
    Hash(argon2::password_hash::Error),
}

fn hasher() -> Argon2<'static> {
    // The constants are within argon2's bounds; `Params::DEFAULT` is the same
    // OWASP set, so it is a correct fallback should the crate ever refuse them.
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap_or(Params::DEFAULT);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with argon2id and a fresh random salt, as a PHC string.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    hasher()
        .hash_password(password.as_bytes())
        .map(|phc| phc.to_string())
        .map_err(PasswordError::Hash)
}

/// Whether `password` matches the PHC string `phc`. A malformed hash is `false`.
///
/// The cost parameters are read from `phc`, so hashes made with older settings
/// keep verifying.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the time of one [`verify`] and discards the answer.
///
/// Call it when the user name is unknown (or disabled), so that the response
/// time does not tell which names exist.
pub fn dummy_verify(password: &str) {
    std::hint::black_box(verify(password, DUMMY_HASH));
}

/// Checks a new password for `user` against the console's policy.
///
/// At least [`MIN_CHARS`] characters and at most [`MAX_BYTES`] bytes; it may not
/// contain the user name (ignoring case; names of one or two characters are not
/// looked for) and may not be a single character repeated.
pub fn check_policy(user: &str, password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_CHARS {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_BYTES {
        return Err(PasswordError::TooLong);
    }
    let user = user.trim().to_lowercase();
    if user.chars().count() >= MIN_NAME_CHARS && password.to_lowercase().contains(&user) {
        return Err(PasswordError::ContainsUserName);
    }
    let mut chars = password.chars();
    if let Some(first) = chars.next()
        && chars.all(|c| c == first)
    {
        return Err(PasswordError::OneCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let phc = hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse batterY", &phc));
        assert!(!verify("", &phc));
    }

    #[test]
    fn salts_differ() {
        assert_ne!(
            hash("same password!").unwrap(),
            hash("same password!").unwrap()
        );
    }

    #[test]
    fn malformed_hashes_do_not_match() {
        for bad in [
            "",
            "plain",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$xx$yy",
            "$2b$12$abc",
        ] {
            assert!(!verify("anything", bad), "{bad:?}");
        }
    }

    #[test]
    fn dummy_hash_uses_the_live_parameters() {
        // If the cost changes, the dummy must change with it, or timing leaks.
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        let live = hash("x").unwrap();
        let live = PasswordHash::new(&live).unwrap();
        assert_eq!(parsed.algorithm, live.algorithm);
        assert_eq!(parsed.version, live.version);
        assert_eq!(parsed.params, live.params);
        assert_eq!(parsed.hash.map(|h| h.len()), live.hash.map(|h| h.len()));
        dummy_verify("whatever");
    }

    #[test]
    fn policy() {
        assert_eq!(check_policy("ada", "short"), Err(PasswordError::TooShort));
        // Characters, not bytes: 11 two-byte characters are still too short.
        assert_eq!(
            check_policy("ada", &"é".repeat(11)),
            Err(PasswordError::TooShort)
        );
        assert_eq!(
            check_policy("ada", &"ab".repeat(513)),
            Err(PasswordError::TooLong)
        );
        assert_eq!(
            check_policy("Ada", "my name is ADA ok"),
            Err(PasswordError::ContainsUserName)
        );
        assert_eq!(
            check_policy("ada", "zzzzzzzzzzzzzz"),
            Err(PasswordError::OneCharacter)
        );
        assert_eq!(check_policy("ada", "a perfectly fine one"), Ok(()));
        assert_eq!(check_policy("", "a perfectly fine one"), Ok(()));
        assert_eq!(check_policy("al", "a perfectly fine one"), Ok(()));
        assert_eq!(
            check_policy(" Bob ", "I am bob, hello"),
            Err(PasswordError::ContainsUserName)
        );
        assert_eq!(check_policy("ada", &"ab".repeat(512)), Ok(()));
    }

    #[test]
    fn messages_are_actionable() {
        assert_eq!(
            PasswordError::TooShort.to_string(),
            "the password must be at least 12 characters long"
        );
    }
}
