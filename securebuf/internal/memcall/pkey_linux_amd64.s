#include "textflag.h"

// func cpuidMaxLeaf() uint32
TEXT ·cpuidMaxLeaf(SB),NOSPLIT|NOFRAME,$0-4
	XORL AX, AX
	XORL CX, CX
	CPUID
	MOVL AX, ret+0(FP)
	RET

// func cpuid7ECX() uint32
TEXT ·cpuid7ECX(SB),NOSPLIT|NOFRAME,$0-4
	MOVL $7, AX
	XORL CX, CX
	CPUID
	MOVL CX, ret+0(FP)
	RET

// func rdpkru() uint32
//
// RDPKRU (0F 01 EE) needs ECX = 0; it returns PKRU in EAX and clears EDX.
TEXT ·rdpkru(SB),NOSPLIT|NOFRAME,$0-4
	XORL CX, CX
	BYTE $0x0f; BYTE $0x01; BYTE $0xee
	MOVL AX, ret+0(FP)
	RET

// func wrpkru(v uint32)
//
// WRPKRU (0F 01 EF) writes EAX to PKRU and needs ECX = EDX = 0.
TEXT ·wrpkru(SB),NOSPLIT|NOFRAME,$0-4
	MOVL v+0(FP), AX
	XORL CX, CX
	XORL DX, DX
	BYTE $0x0f; BYTE $0x01; BYTE $0xef
	RET
