-- The audit trail written by the `audit` subscriber: one row per `user.login` event.
CREATE TABLE `audit_log` (
    `id`          INTEGER PRIMARY KEY AUTOINCREMENT,
    `event_id`    TEXT NOT NULL UNIQUE CHECK (length(`event_id`) <= 32),
    `user_name`   TEXT NOT NULL CHECK (length(`user_name`) <= 64),
    `user_id`     INTEGER,
    `success`     INTEGER NOT NULL CHECK (`success` IN (0, 1)),
    `at_ms`       INTEGER NOT NULL,
    `remote_addr` TEXT NOT NULL CHECK (length(`remote_addr`) <= 45)
);
CREATE INDEX `audit_log_user_name` ON `audit_log` (`user_name`, `at_ms`);
