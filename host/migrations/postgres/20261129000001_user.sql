-- The seed's "user" table. "user" is a reserved word in PostgreSQL: it is always quoted
-- (plugins write `user` and the host rewrites backticks to double quotes).
CREATE TABLE "user" (
    "id"           SERIAL PRIMARY KEY,
    "user_id"      INTEGER UNIQUE CHECK ("user_id" >= 0),
    "user_name"    VARCHAR(20) NOT NULL UNIQUE,
    "pwd"          VARCHAR(128) NOT NULL,
    "created_time" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    "updated_time" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
);

CREATE FUNCTION "user_touch_updated_time"() RETURNS trigger AS $$
BEGIN
    NEW."updated_time" = CURRENT_TIMESTAMP(3);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER "user_updated_time" BEFORE UPDATE ON "user"
FOR EACH ROW EXECUTE FUNCTION "user_touch_updated_time"();

-- The seed user micro / 123, stored as an argon2id hash (m=19456 KiB, t=2, p=1).
INSERT INTO "user" ("user_id", "user_name", "pwd")
VALUES (10001, 'micro', '$argon2id$v=19$m=19456,t=2,p=1$AjZHr+6bJw0HsfYPcXUrVA$4XMEO3i3rhVoaYGoec90F7GlRpGjX2cl7uM1+z34Rc8');
