-- A password an administrator was shown (a new account's, an imported one's, a reset one's) is
-- known to someone else, so its person chooses their own before the console does anything else.
ALTER TABLE staff ADD COLUMN must_change_password boolean NOT NULL DEFAULT false;
