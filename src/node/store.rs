//! The SQLite store: LDK key-value data, wallet persistence and node tables in one file.
