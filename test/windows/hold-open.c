/*
 * What an antivirus scanner, a search indexer, a backup agent or `Get-Content -Wait` does to
 * RelayDesk's files on Windows: opens them without FILE_SHARE_DELETE, so that while they are open
 * nobody can rename over them or delete them (ERROR_SHARING_VIOLATION).
 *
 *   hold-open.exe <ready file> <release file> <file>...
 *
 * Opens every <file> that exists, writes one line per file to <ready file> ("held <path>" or
 * "missing <path>"), then keeps them open until <release file> exists (at most 5 minutes), and exits 0.
 */
#include <windows.h>
#include <stdio.h>

int wmain(int argc, wchar_t **argv) {
  if (argc < 4) {
    fwprintf(stderr, L"usage: hold-open.exe <ready file> <release file> <file>...\n");
    return 2;
  }
  /* Written aside and renamed into place, so that whoever waits for it never reads half of it. */
  wchar_t partial[MAX_PATH + 8];
  if (swprintf(partial, MAX_PATH + 8, L"%ls.part", argv[1]) < 0) return 2;
  FILE *ready = _wfopen(partial, L"w");
  if (!ready) return 2;
  for (int i = 3; i < argc; i++) {
    HANDLE handle = CreateFileW(argv[i], GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                                OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    /* Deliberately never closed before the release: the handle is the point. */
    fwprintf(ready, L"%ls %ls\n", handle == INVALID_HANDLE_VALUE ? L"missing" : L"held", argv[i]);
  }
  fclose(ready);
  if (!MoveFileExW(partial, argv[1], MOVEFILE_REPLACE_EXISTING)) return 2;
  for (int waited = 0; waited < 5 * 60 * 20; waited++) {
    if (GetFileAttributesW(argv[2]) != INVALID_FILE_ATTRIBUTES) return 0;
    Sleep(50);
  }
  return 1;
}
