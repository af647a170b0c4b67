//! The one-line hook for injected panics must not swallow real ones: with
//! it installed, a real panic still reaches the hook that was there before
//! (Rust's report, and the backtrace when asked for), and only panics whose
//! message starts with `httpy_core::INJECTED_PANIC` stop at it. A binary of
//! its own, because the panic hook belongs to the whole process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn real_panics_reach_the_previous_hook_and_injected_ones_do_not() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::panic::set_hook(Box::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    httpy_core::quiet_injected_panics();
    // Twice is harmless: the hook is chained once.
    httpy_core::quiet_injected_panics();

    let real = std::panic::catch_unwind(|| panic!("a real bug: {}", 7));
    assert!(real.is_err());
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "a real panic must reach the previous hook"
    );

    let injected =
        std::panic::catch_unwind(|| panic!("{} for /__panic (test)", httpy_core::INJECTED_PANIC));
    assert!(injected.is_err());
    let literal = std::panic::catch_unwind(|| panic!("injected panic in a binding call"));
    assert!(literal.is_err());
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "injected panics stop at the quiet hook"
    );

    let again = std::panic::catch_unwind(|| panic!("another real one"));
    assert!(again.is_err());
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}
