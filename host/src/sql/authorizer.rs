//! What SQLite refuses to a plugin's SQL, whatever its spelling: `ATTACH` of a file (which
//! also stops `VACUUM INTO`, which attaches its target), so that no statement opens or
//! writes a file of its choosing, and the `load_extension` function (native code). An
//! empty name, SQLite's private temporary database, stays allowed: plain `VACUUM` attaches
//! one.
//!
//! SQLite's authorizer (`sqlite3_set_authorizer`) sees each statement as it is compiled,
//! after comments, case and quoting are gone: a parser of our own could be fooled by any
//! of them. sqlx exposes the raw handle (`LockedSqliteHandle::as_raw_handle`), not the
//! authorizer, so it is set through `libsqlite3-sys` (the version sqlx links).

use std::ffi::{CStr, c_char, c_int, c_void};

use libsqlite3_sys::{
    SQLITE_ATTACH, SQLITE_DENY, SQLITE_FUNCTION, SQLITE_OK, sqlite3_set_authorizer,
};

/// Installs the authorizer on a fresh pooled connection (`PoolOptions::after_connect`).
pub async fn install(connection: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = connection.lock_handle().await?;
    // SAFETY: the handle is locked (no other call runs on it), and `authorize` is a plain
    // function with no user data, valid for as long as the connection.
    let rc = unsafe {
        sqlite3_set_authorizer(
            handle.as_raw_handle().as_ptr(),
            Some(authorize),
            std::ptr::null_mut(),
        )
    };
    if rc == SQLITE_OK {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(format!(
            "cannot install the SQLite authorizer (code {rc})"
        )))
    }
}

/// SQLite's callback: `action` and up to four details (for `SQLITE_ATTACH`, the first is
/// the file name; for `SQLITE_FUNCTION`, the second is the function's name).
unsafe extern "C" fn authorize(
    _user_data: *mut c_void,
    action: c_int,
    detail1: *const c_char,
    detail2: *const c_char,
    _database: *const c_char,
    _trigger: *const c_char,
) -> c_int {
    // SAFETY: SQLite passes NUL-terminated strings (or null), valid during the call.
    let text =
        |detail: *const c_char| (!detail.is_null()).then(|| unsafe { CStr::from_ptr(detail) });
    let refused = match action {
        SQLITE_ATTACH => text(detail1).is_none_or(|file| !file.is_empty()),
        SQLITE_FUNCTION => text(detail2)
            .is_some_and(|name| name.to_bytes().eq_ignore_ascii_case(b"load_extension")),
        _ => false,
    };
    if refused { SQLITE_DENY } else { SQLITE_OK }
}
