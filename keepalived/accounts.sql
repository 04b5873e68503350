-- Accounts for keepalived-mysql, to run on EACH node (MariaDB 10.5+ syntax; see the
-- MySQL lines below). sql_log_bin = 0: CREATE USER must not replicate to the peer, where
-- it would fail with error 1396 and stop replication.
SET sql_log_bin = 0;

-- The check: least privilege. Reads replica status, writes only its heartbeat row.
CREATE USER 'keepalived'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('change-me');
GRANT SLAVE MONITOR, PROCESS ON *.* TO 'keepalived'@'localhost';
GRANT SELECT, INSERT, UPDATE, CREATE ON keepalived_mysql.* TO 'keepalived'@'localhost';

-- The notify hook: switches read_only and kills client sessions. On MariaDB 10.11
-- SUPER alone does not pass read_only; READ_ONLY ADMIN does.
CREATE USER 'keepalived_notify'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('change-me-too');
CREATE USER 'keepalived_notify'@'192.0.2.%' IDENTIFIED VIA mysql_native_password USING PASSWORD('change-me-too');
-- REPLICATION SLAVE ADMIN: a promotion stops fetching from the peer until it is
-- verified (see "Rejoin" in the README).
GRANT READ_ONLY ADMIN, CONNECTION ADMIN, PROCESS, SLAVE MONITOR, REPLICATION SLAVE ADMIN ON *.*
    TO 'keepalived_notify'@'localhost', 'keepalived_notify'@'192.0.2.%';
-- The "diverged" marker a promoted node writes for a peer it will not fetch from.
GRANT SELECT, INSERT, CREATE ON keepalived_mysql.*
    TO 'keepalived_notify'@'localhost', 'keepalived_notify'@'192.0.2.%';
-- Only with handle-events = on (off by default): scheduled events follow the writer,
-- ALTER EVENT keeping the definer, out of the binary log. EVENT with SET USER lets this
-- account create an event that runs as any user: it is then as strong as root.
-- GRANT EVENT, SET USER, BINLOG ADMIN ON *.*
--     TO 'keepalived_notify'@'localhost', 'keepalived_notify'@'192.0.2.%';
-- GRANT SELECT ON mysql.event
--     TO 'keepalived_notify'@'localhost', 'keepalived_notify'@'192.0.2.%';

-- Replication between the two masters.
CREATE USER 'repl'@'192.0.2.%' IDENTIFIED BY 'change-me-repl';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'192.0.2.%';

SET sql_log_bin = 1;

-- MySQL 8.0 / 8.4 equivalents. caching_sha2_password is MySQL 8's default: over TCP
-- set ssl-mode (or get-server-public-key) in the option file, see
-- keepalived-mysql-container.cnf. Demotion sets super_read_only, which needs
-- SYSTEM_VARIABLES_ADMIN; killing client sessions needs CONNECTION_ADMIN. In a
-- container reached through a published port, replace 'localhost' with the host the
-- server sees (the docker bridge, 172.17.0.1 by default):
--   SET sql_log_bin = 0;
--   CREATE USER 'keepalived'@'localhost' IDENTIFIED WITH caching_sha2_password BY 'change-me';
--   GRANT REPLICATION CLIENT, PROCESS ON *.* TO 'keepalived'@'localhost';
--   GRANT SELECT, INSERT, UPDATE, CREATE ON keepalived_mysql.* TO 'keepalived'@'localhost';
--   CREATE USER 'keepalived_notify'@'localhost' IDENTIFIED WITH caching_sha2_password BY 'change-me-too';
--   CREATE USER 'keepalived_notify'@'192.0.2.%' IDENTIFIED WITH caching_sha2_password BY 'change-me-too';
--   GRANT SYSTEM_VARIABLES_ADMIN, CONNECTION_ADMIN, PROCESS, REPLICATION CLIENT, REPLICATION_SLAVE_ADMIN ON *.*
--       TO 'keepalived_notify'@'localhost', 'keepalived_notify'@'192.0.2.%';
--   GRANT SELECT, INSERT, CREATE ON keepalived_mysql.*
--       TO 'keepalived_notify'@'localhost', 'keepalived_notify'@'192.0.2.%';
--   -- only with handle-events = on (SET_ANY_DEFINER instead of SET_USER_ID on 8.2 and
--   -- later; SYSTEM_USER too for events defined by such users):
--   GRANT EVENT, SET_USER_ID, SESSION_VARIABLES_ADMIN ON *.*
--       TO 'keepalived_notify'@'localhost', 'keepalived_notify'@'192.0.2.%';
--   -- the replica's view at promotion (received heartbeats):
--   GRANT SELECT ON performance_schema.replication_connection_status
--       TO 'keepalived_notify'@'localhost', 'keepalived_notify'@'192.0.2.%';
--   GRANT SELECT ON performance_schema.replication_connection_configuration
--       TO 'keepalived_notify'@'localhost', 'keepalived_notify'@'192.0.2.%';
--   SET sql_log_bin = 1;

-- Then on each node, replicate from the other (node 1 shown):
-- (a heartbeat every half second: a promotion that cannot reach the peer asks this
-- channel whether the peer still sends, and waits about one period for the answer)
--   CHANGE MASTER TO MASTER_HOST = '192.0.2.12', MASTER_USER = 'repl',
--       MASTER_PASSWORD = 'change-me-repl', MASTER_USE_GTID = slave_pos,
--       MASTER_HEARTBEAT_PERIOD = 0.5;
--   START SLAVE;
