//! Stream priorities (spec 7.1): higher subscriber priority first, then the older subscription (lower
//! ID), then the newest group. Mapped onto one i32 for QUIC stream priority (higher is sent first).

/// The QUIC stream priority of a group stream.
///
/// Bits, high to low: 8 bits of subscriber priority, 8 bits of subscription age (255 minus the
/// subscribe ID, saturating: the first 255 subscriptions are ordered, later ones tie), 14 bits of
/// group sequence (newest first; wraps every 16384 groups, where one group briefly ranks low). The
/// top bit stays clear so every group ranks below control streams.
pub fn group_priority(subscriber_priority: u8, subscribe_id: u64, sequence: u64) -> i32 {
    let age = 255 - subscribe_id.min(255) as i32;
    (i32::from(subscriber_priority) << 22) | (age << 14) | (sequence & 0x3fff) as i32
}

/// The priority of control streams: above every group stream, so requests and answers never wait
/// behind media.
pub const CONTROL_PRIORITY: i32 = i32::MAX;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_follows_spec_7_1() {
        // Subscriber priority dominates everything else.
        assert!(group_priority(2, 9, 0) > group_priority(1, 0, 16_000));
        // Then the older subscription.
        assert!(group_priority(1, 0, 0) > group_priority(1, 1, 16_000));
        // Then the newest group.
        assert!(group_priority(1, 3, 11) > group_priority(1, 3, 10));
        // Always non-negative and below control streams.
        assert!(group_priority(255, 0, 0x3fff) < CONTROL_PRIORITY);
        assert!(group_priority(0, u64::MAX, 0) >= 0);
    }
}
