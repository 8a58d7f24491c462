-- The audit trail written by the `audit` subscriber: one row per `user.login` event.
CREATE TABLE "audit_log" (
    "id"          BIGSERIAL PRIMARY KEY,
    "event_id"    VARCHAR(32) NOT NULL UNIQUE,
    "user_name"   VARCHAR(64) NOT NULL,
    "user_id"     BIGINT,
    "success"     SMALLINT NOT NULL CHECK ("success" IN (0, 1)),
    "at_ms"       BIGINT NOT NULL,
    "remote_addr" VARCHAR(45) NOT NULL
);
CREATE INDEX "audit_log_user_name" ON "audit_log" ("user_name", "at_ms");
