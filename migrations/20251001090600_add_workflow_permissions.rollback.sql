DROP TABLE workflow_permissions;
