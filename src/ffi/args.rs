//! Reading C arguments that are not handles: `(pointer, length)` strings, NUL-terminated ones,
//! options and callbacks structs that start with `struct_size`, and out-parameters. Each check
//! fails with an [`FfiError`], so a NULL is an error status and never a dereference.

use std::ffi::{CStr, c_char};
use std::ptr::NonNull;

use super::error::{FfiError, FfiResult};

/// A `(pointer, length)` string argument; `len == SIZE_MAX` means NUL-terminated.
pub(crate) fn str_arg<'a>(ptr: *const c_char, len: usize) -> FfiResult<&'a str> {
    if ptr.is_null() {
        return Err(FfiError::invalid("string is NULL"));
    }
    let bytes = if len == usize::MAX {
        // SAFETY: the caller passed a NUL-terminated string (len == SIZE_MAX, documented).
        unsafe { CStr::from_ptr(ptr) }.to_bytes()
    } else {
        // SAFETY: the caller passed len readable bytes (documented).
        unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }
    };
    std::str::from_utf8(bytes).map_err(|_| FfiError::invalid("string is not UTF-8"))
}

/// A `(pointer, length)` byte buffer argument; NULL is allowed only with a length of 0.
pub(crate) fn bytes_arg<'a>(ptr: *const u8, len: usize) -> FfiResult<&'a [u8]> {
    match (ptr.is_null(), len) {
        (_, 0) => Ok(&[]),
        (true, _) => Err(FfiError::invalid("data is NULL")),
        // SAFETY: ptr points to len readable bytes for the duration of the call (documented).
        (false, _) => Ok(unsafe { std::slice::from_raw_parts(ptr, len) }),
    }
}

/// A `(pointer, length)` broadcast path argument, normalised.
pub(crate) fn path_arg(ptr: *const c_char, len: usize) -> FfiResult<crate::coding::Path> {
    crate::coding::Path::new(str_arg(ptr, len)?).map_err(|err| FfiError::invalid(err.to_string()))
}

/// An optional NUL-terminated string: `None` for NULL.
pub(crate) fn optional_cstr<'a>(ptr: *const c_char) -> Option<&'a CStr> {
    // SAFETY: a non-NULL ptr is a NUL-terminated string (documented on every such argument).
    (!ptr.is_null()).then(|| unsafe { CStr::from_ptr(ptr) })
}

/// An options or callbacks struct that starts with `u32 struct_size` and for which all-zero bytes
/// are valid (integers, bools, pointers, optional function pointers): later library versions
/// append fields, and a caller compiled against an older header passes a smaller struct.
///
/// # Safety
/// Implement only for `#[repr(C)]` structs whose first field is `struct_size: u32` and whose
/// every field is valid when zeroed.
pub(crate) unsafe trait SizedStruct {}

/// The caller's struct read up to its `struct_size`: fields a smaller (older) struct does not
/// have read as zero, their default. `None` for NULL.
pub(crate) fn read_sized<T: SizedStruct>(ptr: *const T) -> Option<T> {
    if ptr.is_null() {
        return None;
    }
    let mut value: T = zeroed_sized();
    // SAFETY: a non-NULL ptr points to at least struct_size initialised bytes, struct_size first
    // (documented on every such struct); only the overlap with T is copied.
    unsafe {
        let size = (ptr.cast::<u32>().read_unaligned() as usize).min(std::mem::size_of::<T>());
        std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), (&raw mut value).cast::<u8>(), size);
    }
    Some(value)
}

/// A caller's sized struct the library fills, up to its `struct_size`: only that field is the
/// caller's input, the rest may be uninitialised.
pub(crate) struct SizedOut<T> {
    ptr: NonNull<T>,
    struct_size: u32,
}

impl<T: SizedStruct> SizedOut<T> {
    /// The struct at `ptr` and its `struct_size`; `None` for NULL.
    pub(crate) fn new(ptr: *mut T) -> Option<Self> {
        let ptr = NonNull::new(ptr)?;
        // SAFETY: a non-NULL ptr points to a struct whose first field is struct_size, set by the
        // caller (documented on every such struct).
        let struct_size = unsafe { ptr.as_ptr().cast::<u32>().read_unaligned() };
        Some(SizedOut { ptr, struct_size })
    }

    pub(crate) fn struct_size(&self) -> u32 {
        self.struct_size
    }

    /// How many bytes of `T` the caller's struct holds.
    pub(crate) fn size(&self) -> usize {
        (self.struct_size as usize).min(std::mem::size_of::<T>())
    }

    /// Writes the part of `value` the caller's struct holds.
    pub(crate) fn write(self, value: T) {
        // SAFETY: the caller's struct holds struct_size >= size writable bytes (documented); only
        // that part is written.
        unsafe {
            std::ptr::copy_nonoverlapping((&raw const value).cast::<u8>(), self.ptr.as_ptr().cast::<u8>(), self.size())
        };
    }
}

/// An all-zero `T`: the defaults of a sized struct.
pub(crate) fn zeroed_sized<T: SizedStruct>() -> T {
    // SAFETY: T is valid when zeroed (the trait's contract).
    unsafe { std::mem::zeroed() }
}

/// A checked out-parameter: not NULL, written at most once, on success.
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// The out-parameter `ptr`; NULL is MOQT_STATUS_ERR_INVALID_ARG.
    pub(crate) fn new(ptr: *mut T) -> FfiResult<Self> {
        NonNull::new(ptr).map(Out).ok_or_else(|| FfiError::invalid("out is NULL"))
    }

    /// An optional out-parameter: `None` for NULL.
    pub(crate) fn optional(ptr: *mut T) -> Option<Self> {
        NonNull::new(ptr).map(Out)
    }

    pub(crate) fn write(self, value: T) {
        // SAFETY: the pointer is not NULL and points to a T the caller owns and lets us write
        // (documented on every out-parameter); nothing is read or dropped there.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// Copies `text` NUL-terminated into the caller's `buf` of `len` bytes (`len` > 0, `buf` not
/// NULL: checked by the caller), truncated on a character boundary to fit.
pub(crate) fn copy_text(text: &str, buf: NonNull<c_char>, len: usize) {
    let mut n = text.len().min(len - 1);
    while n > 0 && !text.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: buf holds len >= n + 1 writable bytes (documented on every such buffer).
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.as_ptr().cast::<u8>(), n);
        *buf.as_ptr().add(n) = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_arguments_are_errors_not_dereferences() {
        assert_eq!(str_arg(std::ptr::null(), 3), Err(FfiError::invalid("string is NULL")));
        assert_eq!(bytes_arg(std::ptr::null(), 0), Ok(&[][..]));
        assert_eq!(bytes_arg(std::ptr::null(), 1), Err(FfiError::invalid("data is NULL")));
        assert!(Out::<u32>::new(std::ptr::null_mut()).is_err());
        assert!(optional_cstr(std::ptr::null()).is_none());
    }

    #[test]
    fn copied_text_is_cut_on_a_character_boundary_and_terminated() {
        let mut buf = [1 as c_char; 4];
        // "é" is two bytes: with room for two characters, only "a" fits whole.
        copy_text("aé", NonNull::new(buf.as_mut_ptr()).unwrap(), 3);
        assert_eq!(buf[..2], [b'a' as c_char, 0]);
    }
}
