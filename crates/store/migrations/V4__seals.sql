-- Each event's seal: its origin's signature (tillmesh_pos::seal), NULL for an event from
-- before its origin sealed. Kept so that the till relays and uploads it as received.
ALTER TABLE events ADD COLUMN sig BLOB;
