import { runDemo } from './demo/run.js';

/*
 * npm run demo: compose a host with the mock IOMMU and vfio-pci, and walk a
 * VMM through device assignment, printing every system call.
 */
const report = runDemo((line) => console.log(line));
if (report.checks.some((c) => !c.ok)) process.exitCode = 1;
