ALTER TABLE `documents` ADD `chunk_size` integer;--> statement-breakpoint
ALTER TABLE `documents` ADD `chunk_overlap` integer;--> statement-breakpoint
-- Uploads still waiting for ingestion take their tenant's chunking as it stands (with the defaults of this release, 256/32).
UPDATE `documents` SET
  `chunk_size` = COALESCE((SELECT json_extract(`settings`, '$.chunkSize') FROM `tenants` WHERE `tenants`.`id` = `documents`.`tenant_id`), 256),
  `chunk_overlap` = COALESCE((SELECT json_extract(`settings`, '$.chunkOverlap') FROM `tenants` WHERE `tenants`.`id` = `documents`.`tenant_id`), 32)
WHERE `status` IN ('queued', 'processing');
