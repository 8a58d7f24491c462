-- The audit trail written by the `audit` subscriber: one row per `user.login` event.
CREATE TABLE `audit_log` (
    `id`          bigint unsigned NOT NULL AUTO_INCREMENT,
    `event_id`    varchar(32) NOT NULL,
    `user_name`   varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    `user_id`     bigint unsigned DEFAULT NULL,
    `success`     tinyint NOT NULL,
    `at_ms`       bigint NOT NULL,
    `remote_addr` varchar(45) NOT NULL,
    PRIMARY KEY (`id`),
    UNIQUE KEY (`event_id`),
    KEY `audit_log_user_name` (`user_name`, `at_ms`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
