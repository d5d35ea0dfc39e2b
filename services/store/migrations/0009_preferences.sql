CREATE TABLE `preference_pairs` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`messages` text NOT NULL,
	`chosen_arm` text NOT NULL,
	`chosen_content` text NOT NULL,
	`rejected_arm` text NOT NULL,
	`rejected_content` text NOT NULL,
	`created_at` integer DEFAULT (unixepoch() * 1000) NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `preference_pairs_tenant_idx` ON `preference_pairs` (`tenant_id`,`created_at`);