//! The login limiter's policy, on a clock of the tests' own.

use super::*;

fn limiter(max: u32, per_address: u32, max_entries: usize) -> LoginLimiter {
    LoginLimiter::new(&LoginLimitConfig {
        max_failures: max,
        max_failures_per_user: 1000,
        max_failures_per_address: per_address,
        window_secs: 60,
        max_entries,
        ..LoginLimitConfig::default()
    })
    .unwrap()
}

fn subject(user: &str, ip: &str) -> Subject {
    Subject {
        user: Some(user.into()),
        address: Some(ip.parse::<IpAddr>().unwrap().into()),
    }
}

fn fail(l: &LoginLimiter, s: &Subject, now: Instant) {
    l.begin_at(s.clone(), now)
        .unwrap()
        .finish_at(Outcome::Failed, now);
}

#[test]
fn a_name_is_throttled_after_its_failures_and_freed_by_the_window() {
    let l = limiter(3, 100, 100);
    let t0 = Instant::now();
    let micro = subject("micro", "10.0.0.1");
    for i in 0..3 {
        fail(&l, &micro, t0 + Duration::from_secs(i));
    }
    let refused = l.begin_at(micro.clone(), t0 + Duration::from_secs(10));
    let Err(Throttled { retry_after }) = refused else {
        panic!("the fourth attempt is refused");
    };
    assert_eq!(
        retry_after,
        Duration::from_secs(50),
        "the oldest leaves at 60 s"
    );
    // Another name from the same address is not slowed.
    let alice = subject("alice", "10.0.0.1");
    l.begin_at(alice, t0 + Duration::from_secs(10))
        .unwrap()
        .finish_at(Outcome::Succeeded, t0);
    // Once the oldest failure has left the window, one more try is allowed.
    assert!(
        l.begin_at(micro.clone(), t0 + Duration::from_secs(60))
            .is_ok()
    );
}

#[test]
fn only_a_success_clears_a_name() {
    let l = limiter(2, 100, 100);
    let t0 = Instant::now();
    let micro = subject("micro", "10.0.0.1");
    fail(&l, &micro, t0);
    // A missing password (400), a timeout (504): the failure stays.
    for status in [400, 415, 500, 503, 504] {
        let outcome = Outcome::of(http::StatusCode::from_u16(status).unwrap());
        assert_eq!(outcome, Outcome::Other);
        l.begin_at(micro.clone(), t0)
            .unwrap()
            .finish_at(outcome, t0);
    }
    fail(&l, &micro, t0);
    assert!(l.begin_at(micro, t0).is_err());
    assert_eq!(Outcome::of(http::StatusCode::OK), Outcome::Succeeded);
    assert_eq!(Outcome::of(http::StatusCode::UNAUTHORIZED), Outcome::Failed);
}

#[test]
fn a_success_clears_its_name_but_not_its_address() {
    let l = limiter(2, 3, 100);
    let t0 = Instant::now();
    let micro = subject("micro", "10.0.0.1");
    fail(&l, &micro, t0);
    l.begin_at(micro.clone(), t0)
        .unwrap()
        .finish_at(Outcome::Succeeded, t0);
    fail(&l, &micro, t0);
    l.begin_at(micro.clone(), t0)
        .expect("one failure since")
        .finish_at(Outcome::Other, t0);
    // The address keeps its three failures: a fourth name from it is throttled.
    fail(&l, &subject("bob", "10.0.0.1"), t0);
    assert!(l.begin_at(subject("carol", "10.0.0.1"), t0).is_err());
    assert!(l.begin_at(subject("carol", "10.0.0.2"), t0).is_ok());
}

#[test]
fn attempts_in_progress_hold_their_place() {
    let l = limiter(3, 100, 100);
    let micro = subject("micro", "10.0.0.1");
    let a = l.begin(micro.clone()).unwrap();
    let b = l.begin(micro.clone()).unwrap();
    let c = l.begin(micro.clone()).unwrap();
    assert!(l.begin(micro.clone()).is_err(), "three guesses in flight");
    a.finish(Outcome::Succeeded);
    b.finish(Outcome::Other);
    let d = l
        .begin(micro.clone())
        .expect("two answered, a place is free");
    c.finish(Outcome::Other);
    d.finish(Outcome::Other);
    assert_eq!(l.tracked(), (0, 0, 0), "nothing failed, nothing is kept");
}

#[test]
fn an_attempt_dropped_unanswered_counts_as_a_failure() {
    let l = limiter(2, 100, 100);
    let micro = subject("micro", "10.0.0.1");
    drop(l.begin(micro.clone()).unwrap());
    drop(l.begin(micro.clone()).unwrap());
    assert!(l.begin(micro).is_err());
}

#[test]
fn failures_at_one_address_do_not_lock_the_owner_out() {
    let mut config = LoginLimitConfig {
        max_failures: 2,
        max_failures_per_user: 5,
        ..LoginLimitConfig::default()
    };
    config.max_failures_per_address = 100;
    let l = LoginLimiter::new(&config).unwrap();
    let t0 = Instant::now();
    fail(&l, &subject("micro", "10.0.0.1"), t0);
    fail(&l, &subject("micro", "10.0.0.1"), t0);
    assert!(l.begin_at(subject("micro", "10.0.0.1"), t0).is_err());
    let owner = l.begin_at(subject("micro", "10.0.0.9"), t0);
    assert!(owner.is_ok(), "another address still gets in");
    drop(owner);
    // The owner's attempt counted as a failure when dropped: 3 of 5 overall. Two more
    // addresses with one failure each reach the global rate.
    fail(&l, &subject("micro", "10.0.0.2"), t0);
    fail(&l, &subject("micro", "10.0.0.3"), t0);
    assert!(l.begin_at(subject("micro", "10.0.0.4"), t0).is_err());
}

#[test]
fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
    let a: AddressKey = "2001:db8::1".parse::<IpAddr>().unwrap().into();
    let b: AddressKey = "2001:db8::ffff:1".parse::<IpAddr>().unwrap().into();
    let c: AddressKey = "2001:db8:0:1::1".parse::<IpAddr>().unwrap().into();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let v4: AddressKey = "::ffff:10.0.0.1".parse::<IpAddr>().unwrap().into();
    assert_eq!(v4, "10.0.0.1".parse::<IpAddr>().unwrap().into());
}

#[test]
fn tables_stay_bounded() {
    let l = limiter(5, 1_000_000, 64);
    let t0 = Instant::now();
    for i in 0..10_000u32 {
        let s = subject(
            &format!("user{i}"),
            &format!("10.{}.{}.1", i / 256 % 256, i % 256),
        );
        fail(&l, &s, t0 + Duration::from_millis(u64::from(i)));
    }
    let (names_at, names, addresses) = l.tracked();
    assert!(
        names_at <= 64 && names <= 64 && addresses <= 64,
        "{names_at} {names} {addresses}"
    );
    // The most recent names are the ones kept.
    assert!(l.names.lock().contains(&"user9999".to_string()));
}

#[test]
fn the_user_name_is_the_first_field_of_a_form() {
    let l = limiter(5, 5, 5);
    let form = Some(&b"application/x-www-form-urlencoded; charset=utf-8"[..]);
    let name = |content_type: Option<&[u8]>, body: &[u8]| l.user_name(content_type, body);
    assert_eq!(
        name(form, b"pwd=1&userName=mi%63ro&userName=other"),
        Ok(Some("micro".into()))
    );
    assert_eq!(name(form, b"userName=&pwd=1"), Ok(None));
    assert_eq!(name(Some(b"application/json"), b"userName=x"), Ok(None));
    assert_eq!(name(None, b"userName=x"), Ok(None));
    assert_eq!(
        name(
            Some(b"application/x-www-form-urlencoded; charset=\xe9"),
            b"userName=x"
        ),
        Err(Unreadable::ContentType)
    );
    assert_eq!(name(form, b"userName=micro%20"), Err(Unreadable::Padded));
    assert_eq!(
        name(form, format!("userName={}", "x".repeat(21)).as_bytes()),
        Err(Unreadable::TooLong(20))
    );
    // Characters, not bytes, as the column counts them.
    let accented = format!("userName={}", "%C3%A9".repeat(20));
    assert_eq!(name(form, accented.as_bytes()), Ok(Some("é".repeat(20))));
    assert!(l.applies_to("/user/login") && !l.applies_to("/user/login/"));
}

#[test]
fn a_remote_check_counts_against_its_name_only_and_holds_its_place() {
    let l = LoginLimiter::new(&LoginLimitConfig {
        max_failures: 1,
        max_failures_per_user: 3,
        max_failures_per_address: 1,
        ..LoginLimitConfig::default()
    })
    .unwrap();
    // Two checks in flight and one failure: the name's count is full.
    let first = l.begin_remote("micro".into()).unwrap();
    let second = l.begin_remote("micro".into()).unwrap();
    l.begin_remote("micro".into())
        .unwrap()
        .finish(Outcome::Failed);
    assert!(
        l.begin_remote("micro".into()).is_err(),
        "in-flight checks hold places"
    );
    // An answer that is no failure frees its place; failures keep theirs.
    first.finish(Outcome::Other);
    second.finish(Outcome::Failed);
    let third = l.begin_remote("micro".into()).unwrap();
    third.finish(Outcome::Failed);
    assert!(l.begin_remote("micro".into()).is_err(), "three failures");
    // Far past max_failures (1) and max_failures_per_address (1): neither is counted, or
    // one node's logins could lock out everyone's.
    l.begin_remote("alice".into())
        .unwrap()
        .finish(Outcome::Failed);
    assert!(l.begin_remote("bob".into()).is_ok());
    // The front shares the name's count.
    assert!(l.begin(subject("micro", "10.0.0.9")).is_err());
}
