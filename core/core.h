#ifndef POSTERN_CORE_H
#define POSTERN_CORE_H
/* core's public interface: the runtime every module builds on. */
#include "core/buf.h"
#include "core/config.h"
#include "core/linereader.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/privs.h"
#endif
