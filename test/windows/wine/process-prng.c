/*
 * bcryptprimitives.dll for Wine 8, which has none: Go >= 1.22 (esbuild) and Rust >= 1.78 (rolldown)
 * take their random bytes from ProcessPrng and refuse to start without it. Windows documents
 * ProcessPrng as always succeeding; RtlGenRandom (SystemFunction036) is Wine's own CSPRNG.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
  while (length > 0) {
    ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
    if (!SystemFunction036(data, chunk)) return FALSE;
    data += chunk;
    length -= chunk;
  }
  return TRUE;
}
