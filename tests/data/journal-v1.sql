-- A journal written by sftprelayd (schema version 1), made by
-- tests/data/mkjournal.sh; read by tests/unit/check_journal.c.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE files (  id            INTEGER PRIMARY KEY,  path          TEXT    NOT NULL UNIQUE,  size          INTEGER NOT NULL,  mtime_ns      INTEGER NOT NULL,  state         TEXT    NOT NULL CHECK (state IN                  ('queued', 'sending', 'delivered', 'failed')),  attempts      INTEGER NOT NULL DEFAULT 0,  next_attempt  INTEGER NOT NULL DEFAULT 0,  resume_offset INTEGER NOT NULL DEFAULT 0,  sha256        TEXT,  last_error    TEXT,  detected_at   INTEGER NOT NULL,  attempted_at  INTEGER,  delivered_at  INTEGER,  version       INTEGER NOT NULL DEFAULT 1);
INSERT INTO files VALUES(1,'report.csv',13,1796021125405630318,'delivered',1,1796021125,13,'c15097c46e6dbfe67d8106c18b850ff4312898c146771669ae50324f910ed93c',NULL,1796021125,1796021125,1796021125,2);
INSERT INTO files VALUES(2,'été/données.txt',9,1796021124067058639,'delivered',1,1796021124,9,'3dde892e6cd182a57d0923c22d51604831ff0ddfc0a3366346a05ed36ca9e9bb',NULL,1796021124,1796021124,1796021124,1);
INSERT INTO files VALUES(3,'a/b/c/file_1.txt',11,1796021124067058639,'delivered',1,1796021124,11,'7ca46ed8705ae80e983715aa2d60e4c49c87465c9d9467cafddf02bfadf6fc77',NULL,1796021124,1796021124,1796021124,1);
INSERT INTO files VALUES(4,'blocked/x.txt',6,1796021125481630318,'failed',1,1796021125,0,NULL,'/tmp/mkjournal/dst/blocked/x.txt: creating its folder: Not a directory',1796021125,1796021125,NULL,1);
INSERT INTO files VALUES(5,'later.txt',8,1796021125569630318,'queued',0,1796024150,0,NULL,'target.path /tmp/mkjournal/dst: No such file or directory',1796021125,1796021125,NULL,1);
INSERT INTO files VALUES(6,'big.bin',536870912,1796021127253630318,'sending',0,1796021127,8683520,NULL,NULL,1796021127,1796021127,NULL,1);
CREATE TABLE agent (  key        TEXT PRIMARY KEY,  value      TEXT,  updated_at INTEGER NOT NULL);
INSERT INTO agent VALUES('pid','7472',1796021127);
INSERT INTO agent VALUES('target_error','target.path /tmp/mkjournal/dst: No such file or directory',1796021125);
CREATE INDEX files_due ON files (state, next_attempt);
CREATE INDEX files_delivered ON files (delivered_at)  WHERE state = 'delivered';
COMMIT;
PRAGMA user_version=1;
