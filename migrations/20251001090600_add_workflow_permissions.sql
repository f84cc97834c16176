-- depends: 20251001090400_create_workflows
CREATE TABLE workflow_permissions (
    workflow_id bigint NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    permission  text NOT NULL CHECK (permission IN ('view', 'run', 'edit')),
    PRIMARY KEY (workflow_id, user_id, permission)
);
