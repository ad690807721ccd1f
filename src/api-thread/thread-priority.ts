import { getPriority, setPriority } from 'node:os'

// On Linux every thread is a task of its own with its own nice value, and setpriority(PRIO_PROCESS, 0) changes
// only the calling thread's (POSIX would have it change the whole process; Linux documents the difference in
// setpriority(2) and pthreads(7)). Called inside a worker thread, it lowers that thread alone, so the scheduler
// runs the other threads of the process first when they compete for a CPU and gives this one every cycle they
// leave. Raising a nice value needs no privilege. Elsewhere the call would lower the whole process, so it is not
// made.

/** Raises the calling thread's nice value by `increment` (at most to 19); returns the new value, or undefined off Linux. */
export function lowerThreadPriority (increment: number): number | undefined {
  if (process.platform !== 'linux') return undefined
  const nice = Math.min(19, getPriority(0) + increment)
  setPriority(0, nice)
  return getPriority(0)
}
