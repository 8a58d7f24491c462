-- The seed's `user` table, as the seed wrote it, except that `user_name` uses a binary
-- collation: MariaDB's default collation ignores case, and user names are case-sensitive.
CREATE TABLE `user` (
    `id`           int unsigned NOT NULL AUTO_INCREMENT,
    `user_id`      int unsigned DEFAULT NULL,
    `user_name`    varchar(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    `pwd`          varchar(128) NOT NULL,
    `created_time` timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_time` timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    PRIMARY KEY (`id`),
    UNIQUE KEY `uk_user_name` (`user_name`),
    UNIQUE KEY `uk_user_id` (`user_id`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The seed user micro / 123, stored as an argon2id hash (m=19456 KiB, t=2, p=1).
INSERT INTO `user` (`user_id`, `user_name`, `pwd`)
VALUES (10001, 'micro', '$argon2id$v=19$m=19456,t=2,p=1$AjZHr+6bJw0HsfYPcXUrVA$4XMEO3i3rhVoaYGoec90F7GlRpGjX2cl7uM1+z34Rc8');
