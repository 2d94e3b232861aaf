-- A message's credentials (SMS and booking codes, offer link and pass tokens) are erased from
-- its outbox row once it is sent or given up; the delivery record keeps a keyed digest of the
-- words it sent, which shows whether a given text is what went out.
ALTER TABLE deliveries ADD COLUMN body_digest bytea;
UPDATE outbox o SET payload = (o.payload - ARRAY['code', 'booking_code', 'accept_url', 'qr_token', 'pass_url'])
                              || jsonb_build_object('erased', true)
FROM deliveries d WHERE d.outbox_id = o.id AND d.finished_at IS NOT NULL;
