//! Time as the caller supplies it.

/// Seconds since the Unix epoch, supplied by the caller.
///
/// OAuth lifetimes (`expires_in`, `exp`, `nbf`) are wall-clock seconds, so this is not an
/// `Instant`. The core never reads a clock: the drivers pass the system time, the model checker
/// passes logical ticks (0, 1, 2, ...), tests pass whatever they like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(u64);

impl UnixTime {
    /// The instant `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs)
    }

    /// Seconds since the epoch.
    pub const fn as_secs(self) -> u64 {
        self.0
    }

    /// `self + secs`, saturating at the end of time.
    #[must_use]
    pub const fn plus(self, secs: u64) -> Self {
        Self(self.0.saturating_add(secs))
    }

    /// `self - secs`, saturating at the epoch.
    #[must_use]
    pub const fn minus(self, secs: u64) -> Self {
        Self(self.0.saturating_sub(secs))
    }
}
