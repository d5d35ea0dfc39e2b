CREATE TABLE `fine_tune_checkpoints` (
	`id` text PRIMARY KEY NOT NULL,
	`job_id` text NOT NULL,
	`step` integer NOT NULL,
	`fine_tuned_model` text NOT NULL,
	`metrics` text NOT NULL,
	`created_at` integer DEFAULT (unixepoch() * 1000) NOT NULL,
	FOREIGN KEY (`job_id`) REFERENCES `fine_tune_jobs`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `fine_tune_checkpoints_job_idx` ON `fine_tune_checkpoints` (`job_id`);--> statement-breakpoint
ALTER TABLE `fine_tune_events` ADD `type` text DEFAULT 'message' NOT NULL;--> statement-breakpoint
ALTER TABLE `fine_tune_jobs` ADD `validation_file` text;--> statement-breakpoint
ALTER TABLE `fine_tune_jobs` ADD `suffix` text;--> statement-breakpoint
ALTER TABLE `fine_tune_jobs` ADD `seed` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `fine_tune_jobs` ADD `metadata` text;--> statement-breakpoint
ALTER TABLE `fine_tune_jobs` ADD `fine_tuned_model` text;--> statement-breakpoint
ALTER TABLE `fine_tune_jobs` ADD `trained_tokens` integer;--> statement-breakpoint
ALTER TABLE `fine_tune_jobs` ADD `cancel_requested` integer DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE `fine_tune_jobs` ADD `lease_owner` text;--> statement-breakpoint
ALTER TABLE `fine_tune_jobs` ADD `lease_expires_at` integer;--> statement-breakpoint
ALTER TABLE `fine_tune_jobs` ADD `attempts` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `fine_tune_jobs` ADD `estimated_finish` integer;--> statement-breakpoint
CREATE INDEX `fine_tune_jobs_status_idx` ON `fine_tune_jobs` (`status`,`created_at`);