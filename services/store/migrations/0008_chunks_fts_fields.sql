-- BM25 over three fields of a chunk: its document's title, its heading path (joined by spaces) and its
-- text, each a column of chunks_fts so that bm25() weights them (services/retrieval/chunk-store.ts).
-- Contentless (the text stays in chunks and documents only), with contentless_delete so that triggers
-- delete by rowid. Porter stemming over unicode61 as before. Existing chunks are indexed again here.
-- Every statement is idempotent and drizzle runs pending migrations in one transaction, so a restart
-- midway leaves the previous index in place and runs this file again from the top.
DROP TRIGGER IF EXISTS `chunks_fts_ai`;
--> statement-breakpoint
DROP TRIGGER IF EXISTS `chunks_fts_ad`;
--> statement-breakpoint
DROP TRIGGER IF EXISTS `chunks_fts_au`;
--> statement-breakpoint
DROP TRIGGER IF EXISTS `documents_title_fts_au`;
--> statement-breakpoint
DROP TABLE IF EXISTS `chunks_fts`;
--> statement-breakpoint
CREATE VIRTUAL TABLE `chunks_fts` USING fts5(`title`, `heading`, `text`, content='', contentless_delete=1, tokenize='porter unicode61 remove_diacritics 2');
--> statement-breakpoint
INSERT INTO `chunks_fts`(rowid, `title`, `heading`, `text`)
  SELECT c.`id`, d.`title`, (SELECT group_concat(value, ' ') FROM json_each(c.`heading_path`)), c.`text`
  FROM `chunks` c JOIN `documents` d ON d.`id` = c.`document_id`;
--> statement-breakpoint
CREATE TRIGGER `chunks_fts_ai` AFTER INSERT ON `chunks` BEGIN
  INSERT INTO `chunks_fts`(rowid, `title`, `heading`, `text`) VALUES (
    new.`id`, (SELECT `title` FROM `documents` WHERE `id` = new.`document_id`),
    (SELECT group_concat(value, ' ') FROM json_each(new.`heading_path`)), new.`text`);
END;
--> statement-breakpoint
CREATE TRIGGER `chunks_fts_ad` AFTER DELETE ON `chunks` BEGIN
  DELETE FROM `chunks_fts` WHERE rowid = old.`id`;
END;
--> statement-breakpoint
CREATE TRIGGER `chunks_fts_au` AFTER UPDATE OF `text`, `heading_path`, `document_id` ON `chunks` BEGIN
  DELETE FROM `chunks_fts` WHERE rowid = old.`id`;
  INSERT INTO `chunks_fts`(rowid, `title`, `heading`, `text`) VALUES (
    new.`id`, (SELECT `title` FROM `documents` WHERE `id` = new.`document_id`),
    (SELECT group_concat(value, ' ') FROM json_each(new.`heading_path`)), new.`text`);
END;
--> statement-breakpoint
CREATE TRIGGER `documents_title_fts_au` AFTER UPDATE OF `title` ON `documents` BEGIN
  DELETE FROM `chunks_fts` WHERE rowid IN (SELECT `id` FROM `chunks` WHERE `document_id` = new.`id`);
  INSERT INTO `chunks_fts`(rowid, `title`, `heading`, `text`)
    SELECT c.`id`, new.`title`, (SELECT group_concat(value, ' ') FROM json_each(c.`heading_path`)), c.`text`
    FROM `chunks` c WHERE c.`document_id` = new.`id`;
END;
