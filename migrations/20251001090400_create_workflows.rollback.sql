DROP TABLE workflows;
DROP TYPE workflow_status;
