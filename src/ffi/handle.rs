//! How C holds each handle type, after rustls-ffi's `Castable`: a [`Castable`] handle is either
//! owned by C as a `Box` (created into an out-parameter, ended by its `_free`) or a counted `Arc`
//! reference (`moqt_frame`). The functions here are the only casts between C pointers and Rust
//! values, so every one is checked the same way and a NULL is an error status, never UB.

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock};

use super::args::Out;
use super::error::{FfiError, FfiResult, moqt_status};

/// C owns the handle as a `Box`: one owner, freed once.
pub(crate) struct OwnershipBox;

/// C holds counted references to an `Arc`: any thread may add or drop one.
pub(crate) struct OwnershipArc;

/// A type C holds by pointer, and how.
pub(crate) trait Castable: Sized {
    /// [`OwnershipBox`] or [`OwnershipArc`].
    type Ownership;
    /// The parameter name messages use ("client is NULL").
    const NAME: &'static str;
    /// True for a handle with a waiting call that may overlap its `_free` on another thread
    /// (`moqt_pull_next_frame`): it is kept in [`RACING_FREE`] while alive, and that call
    /// borrows it through [`racing_ref`] only.
    const RACES_WITH_FREE: bool = false;
}

/// The addresses of live [`Castable::RACES_WITH_FREE`] handles. A call that may overlap the
/// free looks its handle up here under the read lock and takes what it needs (its own `Arc`)
/// before letting go; `take_box` removes the handle under the write lock before freeing it. So
/// that call either finds the handle whole or learns it was freed: it never reads freed memory,
/// however the two threads interleave (the handle's own fields could not say, being freed too).
/// Keyed by address and type, so an address reused by a handle of another type is never
/// taken for the freed one.
static RACING_FREE: RwLock<BTreeSet<(usize, &'static str)>> = RwLock::new(BTreeSet::new());

/// Borrows the live handle behind `ptr`; NULL is MOQT_STATUS_ERR_INVALID_ARG.
pub(crate) fn try_ref<'a, T: Castable>(ptr: *const T) -> FfiResult<&'a T> {
    opt_ref(ptr).ok_or_else(|| FfiError::invalid(format!("{} is NULL", T::NAME)))
}

/// Runs `borrow` on the handle behind `ptr` if it was not freed yet, holding it alive until
/// `borrow` returns: for the calls documented to overlap the handle's `_free`. NULL is
/// MOQT_STATUS_ERR_INVALID_ARG, a freed handle MOQT_STATUS_ERR_CLOSED.
pub(crate) fn racing_ref<T: Castable, R>(ptr: *const T, borrow: impl FnOnce(&T) -> FfiResult<R>) -> FfiResult<R> {
    const { assert!(T::RACES_WITH_FREE, "racing_ref is for handles kept in RACING_FREE") };
    if ptr.is_null() {
        return Err(FfiError::invalid(format!("{} is NULL", T::NAME)));
    }
    let live = RACING_FREE.read().unwrap_or_else(PoisonError::into_inner);
    if !live.contains(&(ptr as usize, T::NAME)) {
        return Err(FfiError::new(moqt_status::ErrClosed, format!("the {} was freed", T::NAME)));
    }
    // SAFETY: the address is in RACING_FREE, so `take_box` has not removed it, and it cannot
    // free the handle before we drop the read lock after `borrow`.
    borrow(unsafe { &*ptr })
}

/// Borrows the live handle behind `ptr`, `None` for NULL: for calls that answer NULL with a
/// documented default instead of a status.
pub(crate) fn opt_ref<'a, T: Castable>(ptr: *const T) -> Option<&'a T> {
    // SAFETY: a non-NULL handle pointer came from `Out::set_boxed` or `arc_ptr` and is alive for
    // the call (the header's contract on every handle parameter).
    unsafe { ptr.as_ref() }
}

impl<T: Castable<Ownership = OwnershipBox>> Out<*mut T> {
    /// Hands `value` to C as a new owned handle.
    pub(crate) fn set_boxed(self, value: T) {
        let ptr = Box::into_raw(Box::new(value));
        if T::RACES_WITH_FREE {
            RACING_FREE.write().unwrap_or_else(PoisonError::into_inner).insert((ptr as usize, T::NAME));
        }
        self.write(ptr);
    }
}

/// Takes back the handle C frees; `None` for NULL.
pub(crate) fn take_box<T: Castable<Ownership = OwnershipBox>>(ptr: *mut T) -> Option<Box<T>> {
    if T::RACES_WITH_FREE {
        // From here on a `racing_ref` call finds it freed; one in progress holds the read lock,
        // so this waits until it has taken what it needs.
        RACING_FREE.write().unwrap_or_else(PoisonError::into_inner).remove(&(ptr as usize, T::NAME));
    }
    // SAFETY: a non-NULL pointer came from `Out::set_boxed` and C frees it once (documented: a
    // second free is undefined behaviour).
    (!ptr.is_null()).then(|| unsafe { Box::from_raw(ptr) })
}

/// A new reference for C to `value`.
pub(crate) fn arc_ptr<T: Castable<Ownership = OwnershipArc>>(value: Arc<T>) -> *const T {
    Arc::into_raw(value)
}

/// Adds a reference to the handle behind `ptr` (nothing for NULL) and returns `ptr`.
pub(crate) fn add_ref<T: Castable<Ownership = OwnershipArc>>(ptr: *const T) -> *const T {
    if !ptr.is_null() {
        // SAFETY: a non-NULL pointer came from `arc_ptr` and C holds a reference to it.
        unsafe { Arc::increment_strong_count(ptr) };
    }
    ptr
}

/// Drops one of C's references to the handle behind `ptr` (nothing for NULL).
pub(crate) fn release<T: Castable<Ownership = OwnershipArc>>(ptr: *const T) {
    drop(take_arc(ptr));
}

/// Takes back one of C's references to the handle behind `ptr` as an `Arc`; `None` for NULL.
pub(crate) fn take_arc<T: Castable<Ownership = OwnershipArc>>(ptr: *const T) -> Option<Arc<T>> {
    // SAFETY: a non-NULL pointer came from `arc_ptr` and C gives back a reference it held.
    (!ptr.is_null()).then(|| unsafe { Arc::from_raw(ptr) })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Owned(u32);
    impl Castable for Owned {
        type Ownership = OwnershipBox;
        const NAME: &'static str = "owned";
    }

    struct Racing(u32);
    impl Castable for Racing {
        type Ownership = OwnershipBox;
        const NAME: &'static str = "racing";
        const RACES_WITH_FREE: bool = true;
    }

    struct Counted(u32);
    impl Castable for Counted {
        type Ownership = OwnershipArc;
        const NAME: &'static str = "counted";
    }

    #[test]
    fn a_null_handle_is_an_invalid_argument_named_after_its_type() {
        assert_eq!(try_ref::<Owned>(std::ptr::null()).err(), Some(FfiError::invalid("owned is NULL")));
        assert!(opt_ref::<Owned>(std::ptr::null()).is_none());
        assert!(take_box::<Owned>(std::ptr::null_mut()).is_none());
        release::<Counted>(std::ptr::null());
        assert!(add_ref::<Counted>(std::ptr::null()).is_null());
    }

    #[test]
    fn a_boxed_handle_goes_to_c_and_comes_back_once() {
        let mut handle: *mut Owned = std::ptr::null_mut();
        Out::new(&mut handle).unwrap().set_boxed(Owned(7));
        assert_eq!(try_ref(handle).unwrap().0, 7);
        assert_eq!(take_box(handle).unwrap().0, 7);
    }

    #[test]
    fn a_racing_handle_is_borrowed_until_freed_then_reported_closed() {
        let mut handle: *mut Racing = std::ptr::null_mut();
        Out::new(&mut handle).unwrap().set_boxed(Racing(5));
        assert_eq!(racing_ref(handle, |racing| Ok(racing.0)), Ok(5));
        assert_eq!(take_box(handle).unwrap().0, 5);
        let freed = racing_ref(handle, |racing| Ok(racing.0)).unwrap_err();
        assert_eq!(freed, FfiError::new(moqt_status::ErrClosed, "the racing was freed"));
        assert_eq!(racing_ref::<Racing, ()>(std::ptr::null(), |_| Ok(())).err(), Some(FfiError::invalid("racing is NULL")));
    }

    #[test]
    fn counted_references_add_up_and_come_back() {
        let value = Arc::new(Counted(3));
        let ptr = arc_ptr(value.clone());
        assert_eq!(add_ref(ptr), ptr);
        assert_eq!(Arc::strong_count(&value), 3);
        release(ptr);
        assert_eq!(take_arc(ptr).map(|taken| taken.0), Some(3));
        assert_eq!(Arc::strong_count(&value), 1);
        assert!(take_arc::<Counted>(std::ptr::null()).is_none());
    }
}
