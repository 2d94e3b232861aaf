-- People may now be spoken to in Turkish and Arabic too: their messages are queued in it.
ALTER TABLE registrants DROP CONSTRAINT registrants_language_check;
ALTER TABLE registrants
    ADD CONSTRAINT registrants_language_check CHECK (language IN ('de', 'en', 'tr', 'ar'));

ALTER TABLE outbox DROP CONSTRAINT outbox_language_check;
ALTER TABLE outbox
    ADD CONSTRAINT outbox_language_check CHECK (language IN ('de', 'en', 'tr', 'ar'));
