//! Entropy as the caller supplies it.
//!
//! The core mints codes, tokens, client ids and PKCE verifiers from an [`Entropy`] source passed
//! to every entry point that needs one. The drivers pass the operating system's CSPRNG; tests,
//! fuzzers and the model checker pass [`Sequential`], which is predictable and therefore
//! **insecure**, but `Clone + Eq + Hash`, so it can live inside a model-checked state.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A source of unpredictable bytes.
pub trait Entropy {
    /// Fill `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]);
}

impl<E: Entropy + ?Sized> Entropy for &mut E {
    fn fill(&mut self, dest: &mut [u8]) {
        (**self).fill(dest);
    }
}

/// Number of random octets in every minted secret (codes, tokens, ids, verifiers): 256 bits,
/// well above the 2^-160 guessing bound of OAuth 2.1 §7.7.
// spec: AZ-27
pub const SECRET_OCTETS: usize = 32;

/// A fresh unguessable value, base64url without padding (43 characters for 32 octets).
pub fn mint(entropy: &mut impl Entropy) -> String {
    let mut bytes = [0u8; SECRET_OCTETS];
    entropy.fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Predictable, **insecure** entropy for tests, fuzzing and the model checker: a counter.
///
/// Each call to [`Entropy::fill`] writes the counter (big-endian, repeated) and increments it,
/// so every minted value is distinct and the sequence is reproducible.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sequential(pub u64);

impl Entropy for Sequential {
    fn fill(&mut self, dest: &mut [u8]) {
        let counter = self.0.to_be_bytes();
        for (byte, value) in dest.iter_mut().zip(counter.iter().cycle()) {
            *byte = *value;
        }
        self.0 = self.0.wrapping_add(1);
    }
}

/// Entropy read from a byte slice (for fuzzers: the input steers the minted values); zeros once
/// the slice is exhausted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FromBytes<'a>(pub &'a [u8]);

impl Entropy for FromBytes<'_> {
    fn fill(&mut self, dest: &mut [u8]) {
        let take = dest.len().min(self.0.len());
        let (head, rest) = self.0.split_at(take);
        dest[..take].copy_from_slice(head);
        dest[take..].fill(0);
        self.0 = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // spec: AZ-27
    #[test]
    fn minted_values_carry_256_bits_and_differ() {
        let mut entropy = Sequential::default();
        let a = mint(&mut entropy);
        let b = mint(&mut entropy);
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn from_bytes_pads_with_zeros() {
        let mut e = FromBytes(&[1, 2, 3]);
        let mut out = [9u8; 5];
        e.fill(&mut out);
        assert_eq!(out, [1, 2, 3, 0, 0]);
    }
}
