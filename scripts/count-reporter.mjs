// A node:test reporter that writes {passed, failed, skipped, todo, failures[]} as JSON.
export default async function* countReporter(source) {
  const counts = { passed: 0, failed: 0, skipped: 0, todo: 0, failures: [] };
  for await (const event of source) {
    const d = event.data;
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    if (d.details && d.details.type === 'suite') continue;
    if (event.type === 'test:pass') {
      if (d.skip) counts.skipped++;
      else if (d.todo) counts.todo++;
      else counts.passed++;
    } else {
      counts.failed++;
      counts.failures.push(`${d.file ?? ''}: ${d.name}`);
    }
  }
  yield JSON.stringify(counts) + '\n';
}
