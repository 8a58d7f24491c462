-- The seed's `user` table. SQLite compares text with BINARY collation, so user names are
-- case-sensitive as on the other databases.
CREATE TABLE `user` (
    `id`           INTEGER PRIMARY KEY AUTOINCREMENT,
    `user_id`      INTEGER UNIQUE CHECK (`user_id` >= 0),
    `user_name`    TEXT NOT NULL UNIQUE CHECK (length(`user_name`) <= 20),
    `pwd`          TEXT NOT NULL CHECK (length(`pwd`) <= 128),
    `created_time` TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    `updated_time` TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

CREATE TRIGGER `user_updated_time` AFTER UPDATE ON `user`
FOR EACH ROW WHEN NEW.`updated_time` = OLD.`updated_time`
BEGIN
    UPDATE `user` SET `updated_time` = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE `id` = NEW.`id`;
END;

-- The seed user micro / 123, stored as an argon2id hash (m=19456 KiB, t=2, p=1).
INSERT INTO `user` (`user_id`, `user_name`, `pwd`)
VALUES (10001, 'micro', '$argon2id$v=19$m=19456,t=2,p=1$AjZHr+6bJw0HsfYPcXUrVA$4XMEO3i3rhVoaYGoec90F7GlRpGjX2cl7uM1+z34Rc8');
