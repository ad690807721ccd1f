// Prints the configuration table for README.md: `npx tsx scripts/config-table.ts`.
import { settingsTable } from '../src/config/settings-table.ts'

process.stdout.write(settingsTable() + '\n')
