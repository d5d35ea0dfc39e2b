CREATE TABLE `chat_responses` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`strategy` text NOT NULL,
	`adapter` text DEFAULT '' NOT NULL,
	`prompt` text NOT NULL,
	`rating` text,
	`comment` text,
	`rated_at` integer,
	`created_at` integer DEFAULT (unixepoch() * 1000) NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `chat_responses_tenant_idx` ON `chat_responses` (`tenant_id`,`adapter`,`created_at`);--> statement-breakpoint
CREATE INDEX `chat_responses_created_idx` ON `chat_responses` (`created_at`);--> statement-breakpoint
CREATE TABLE `eval_monitor_alerts` (
	`id` text PRIMARY KEY NOT NULL,
	`monitor_id` text NOT NULL,
	`check_id` text NOT NULL,
	`kind` text NOT NULL,
	`metric` text NOT NULL,
	`value` real NOT NULL,
	`threshold` real,
	`baseline` real,
	`p` real,
	`adapter` text,
	`message` text NOT NULL,
	`delivery` text,
	`created_at` integer DEFAULT (unixepoch() * 1000) NOT NULL,
	FOREIGN KEY (`monitor_id`) REFERENCES `eval_monitors`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `eval_monitor_alerts_monitor_idx` ON `eval_monitor_alerts` (`monitor_id`,`created_at`);--> statement-breakpoint
CREATE UNIQUE INDEX `eval_monitor_alerts_check_idx` ON `eval_monitor_alerts` (`check_id`,`kind`,`metric`);--> statement-breakpoint
CREATE TABLE `eval_monitor_checks` (
	`id` text PRIMARY KEY NOT NULL,
	`monitor_id` text NOT NULL,
	`run_id` text,
	`status` text DEFAULT 'running' NOT NULL,
	`adapter` text,
	`metrics` text DEFAULT '{}' NOT NULL,
	`baseline` integer DEFAULT false NOT NULL,
	`error` text,
	`created_at` integer DEFAULT (unixepoch() * 1000) NOT NULL,
	`finished_at` integer,
	FOREIGN KEY (`monitor_id`) REFERENCES `eval_monitors`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `eval_monitor_checks_monitor_idx` ON `eval_monitor_checks` (`monitor_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `eval_monitor_checks_status_idx` ON `eval_monitor_checks` (`status`);--> statement-breakpoint
CREATE TABLE `eval_monitors` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`dataset_id` text NOT NULL,
	`arm` text NOT NULL,
	`every_ms` integer NOT NULL,
	`thresholds` text DEFAULT '{}' NOT NULL,
	`metrics` text NOT NULL,
	`baseline_run_id` text,
	`baseline_pinned` integer DEFAULT false NOT NULL,
	`webhook_url` text,
	`webhook_secret` text,
	`next_run_at` integer NOT NULL,
	`last_run_at` integer,
	`created_at` integer DEFAULT (unixepoch() * 1000) NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `eval_monitors_tenant_idx` ON `eval_monitors` (`tenant_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `eval_monitors_next_idx` ON `eval_monitors` (`next_run_at`);