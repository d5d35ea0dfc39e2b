ALTER TABLE `adapters` ADD `kind` text DEFAULT 'lora' NOT NULL;--> statement-breakpoint
ALTER TABLE `adapters` ADD `num_virtual_tokens` integer;