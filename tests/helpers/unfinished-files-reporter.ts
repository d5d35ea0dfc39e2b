/**
 * Names the test file whose worker process died (a native crash, an abort), which vitest's own report does
 * not: it prints "Worker exited unexpectedly" and counts the file as neither passed nor failed. At the end
 * of a run with unhandled errors (a dead worker is one), each file that started and never ended is listed
 * with the test it was running.
 */
import type { Reporter, TestCase, TestModule } from "vitest/node";

export default class UnfinishedFilesReporter implements Reporter {
  /** Started files not yet ended, with the test each was last running. */
  private readonly running = new Map<string, string>();

  onTestModuleStart(module: TestModule): void {
    this.running.set(module.moduleId, "(before its first test)");
  }

  onTestCaseReady(test: TestCase): void {
    // Events can arrive after their file's end: only a file still running is updated.
    if (this.running.has(test.module.moduleId)) this.running.set(test.module.moduleId, test.fullName);
  }

  onTestModuleEnd(module: TestModule): void {
    this.running.delete(module.moduleId);
  }

  onTestRunEnd(_modules: readonly TestModule[], errors: readonly unknown[]): void {
    if (errors.length === 0) return;
    for (const [file, test] of this.running) console.error(`\nUnfinished: ${file} stopped while running "${test}": its worker process died.`);
  }
}
