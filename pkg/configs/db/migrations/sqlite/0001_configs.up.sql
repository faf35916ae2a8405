-- Every change of a tenant's config (a new config, a deactivation, a
-- restore) is a new row, so the row IDs are the versions pollers ask for.
CREATE TABLE configs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: IDs are never reused
    owner_id   TEXT    NOT NULL,                  -- the tenant
    kind       TEXT    NOT NULL,                  -- 'alertmanager' or 'rules'
    config     TEXT    NOT NULL,                  -- JSON
    created_at BIGINT  NOT NULL,                  -- Unix milliseconds
    deleted_at BIGINT                             -- Unix milliseconds; set while deactivated
);
CREATE INDEX configs_kind_owner_id ON configs (kind, owner_id, id);
