//! When a cached token is refreshed and until when it may be injected: a pure function
//! of when it was obtained and how long it lives.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// The refresh schedule of one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub obtained: Instant,
    /// From here on, the token is still served but replaced in the background.
    pub refresh_at: Instant,
    /// From here on, the token is never injected.
    pub usable_until: Instant,
}

/// Refresh once 75 % of the lifetime has passed; stop using the token min(30 s, 10 % of
/// its lifetime) before it expires, and never after `not_after` (an exchanged token's
/// subject expiry).
pub fn schedule(obtained: Instant, lifetime: Duration, not_after: Option<Instant>) -> Schedule {
    let margin = (lifetime / 10).min(Duration::from_secs(30));
    let mut usable_until = obtained + (lifetime - margin);
    if let Some(cap) = not_after {
        usable_until = usable_until.min(cap);
    }
    let refresh_at = (obtained + lifetime.mul_f64(0.75)).min(usable_until);
    Schedule {
        obtained,
        refresh_at,
        usable_until,
    }
}

/// How long from now until `expiry`, an RFC 3339 time (STS `Expiration`, GitHub
/// `expires_at`); `None` if it does not parse or has passed.
pub fn until_rfc3339(expiry: &str) -> Option<Duration> {
    let expiry = humantime::parse_rfc3339_weak(expiry.trim()).ok()?;
    expiry
        .duration_since(SystemTime::now())
        .ok()
        .filter(|left| !left.is_zero())
}

/// Seconds since the Unix epoch, for JWT claims.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_table() {
        let t0 = Instant::now();
        let s = |secs: u64| Duration::from_secs(secs);
        let ms = Duration::from_millis;
        // (lifetime, cap after t0, refresh after t0, usable for)
        let table = [
            (s(3600), None, s(2700), s(3570)), // margin capped at 30 s
            (s(300), None, s(225), s(270)),    // 10 % margin
            (s(100), None, s(75), s(90)),
            (s(2), None, ms(1500), ms(1800)),
            (s(3600), Some(s(600)), s(600), s(600)), // subject expires first
            (s(3600), Some(s(3000)), s(2700), s(3000)),
        ];
        for (lifetime, cap, refresh, usable) in table {
            let got = schedule(t0, lifetime, cap.map(|c| t0 + c));
            assert_eq!(got.refresh_at - t0, refresh, "{lifetime:?} {cap:?}");
            assert_eq!(got.usable_until - t0, usable, "{lifetime:?} {cap:?}");
            assert!(got.refresh_at <= got.usable_until);
        }
    }
}
