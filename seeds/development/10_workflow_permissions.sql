-- Development only: give the admin every permission on every workflow ({{ env }}, {{ database }}).
INSERT INTO workflow_permissions (workflow_id, user_id, permission)
SELECT w.id, u.id, p.permission
FROM workflows w
CROSS JOIN (VALUES ('view'), ('run'), ('edit')) AS p (permission)
JOIN users u ON u.email = 'admin@exfabrica.com'
ON CONFLICT DO NOTHING;
