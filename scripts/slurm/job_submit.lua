--[[
cost-tags submit filter for Slurm (JobSubmitPlugins=lua; this file sits beside slurm.conf).

Every sbatch, srun and salloc allocation passes through here inside slurmctld. The policy
lives in project-check (tested Rust); this shim only hands it the job's fields and relays
its answer. Lua 5.1 can only start programs through /bin/sh, so every value is passed
single-quoted: nothing a user writes in a comment can reach the shell as code.

If project-check is missing, crashes, or its settings are broken, the job is refused with
a message for the administrator (fail closed): a filter that silently lets jobs through
would make spend untraceable without anyone noticing.

slurmctld holds its job locks while this runs, so project-check runs under coreutils
`timeout`: a hung user directory (LDAP, AD) or NFS server refuses submissions with a
message that says so, instead of stalling every submission on the cluster.

Environment of slurmctld (optional):
  COST_TAGS_PROJECT_CHECK  path of project-check (default /opt/slurm/bin/project-check)
  COST_TAGS_CONFIG         settings file passed on to project-check
  COST_TAGS_CHECK_TIMEOUT  seconds project-check may take (default 5)
]]

local PROJECT_CHECK = os.getenv("COST_TAGS_PROJECT_CHECK") or "/opt/slurm/bin/project-check"
local TIMEOUT = tonumber(os.getenv("COST_TAGS_CHECK_TIMEOUT") or "")
if TIMEOUT == nil or TIMEOUT <= 0 then
	TIMEOUT = 5
end
-- timeout(1)'s own exit codes: the time ran out (124), or even SIGKILL was needed (137).
local TIMED_OUT = { [124] = true, [137] = true }
-- Longer user text is refused here. The whole command goes to sh as one argument, which
-- the kernel caps at 128 KiB (MAX_ARG_STRLEN), and quoting can make a value four times
-- longer: past the cap exec fails, which would look like a broken filter.
local MAX_TEXT_BYTES = 30000

-- 'it'\''s' : the one quoting sh never interprets.
local function quote(s)
	return "'" .. (string.gsub(tostring(s), "'", "'\\''")) .. "'"
end

-- Runs project-check with the given arguments; returns its exit code and its output.
local function project_check(args)
	local cmd = "timeout -k 1 " .. TIMEOUT .. " " .. quote(PROJECT_CHECK)
	for _, a in ipairs(args) do
		cmd = cmd .. " " .. quote(a)
	end
	-- The exit status travels on the last line: Lua 5.1's popen cannot return it.
	local pipe = io.popen(cmd .. " 2>&1 </dev/null; echo \"cost-tags-exit=$?\"")
	if pipe == nil then
		return nil, "cannot start a shell"
	end
	local output = pipe:read("*a") or ""
	pipe:close()
	local message, code = string.match(output, "^(.-)\n?cost%-tags%-exit=(%d+)\n?$")
	if code == nil then
		return nil, output
	end
	return tonumber(code), message
end

-- Appends `--flag value` for each field Slurm set; returns a refusal when they are too
-- long to pass on.
local function add_fields(args, desc)
	local total = 0
	for _, field in ipairs({ "comment", "account", "wckey" }) do
		local value = desc[field]
		if value ~= nil then
			total = total + string.len(value)
			table.insert(args, "--" .. field)
			table.insert(args, value)
		end
	end
	if total > MAX_TEXT_BYTES then
		return "The job's --comment, --account and --wckey are " .. total .. " bytes long in all; at most "
			.. MAX_TEXT_BYTES .. " are accepted."
	end
	return nil
end

-- The job_desc fields that size a job, passed on raw: project-check (tested Rust) reads
-- Slurm's sentinels (NO_VAL, INFINITE), the TRES strings and the array expression.
local SIZE_FIELDS = {
	"time_limit", "min_nodes", "max_nodes", "num_tasks", "cpus_per_task", "ntasks_per_node",
	"min_cpus", "shared", "array_inx", "tres_per_job", "tres_per_node", "tres_per_task", "partition",
}

-- Appends `--field value` for each size field Slurm set, as Slurm gave it.
local function add_size(args, desc)
	for _, field in ipairs(SIZE_FIELDS) do
		local value = desc[field]
		if value ~= nil and value ~= "" then
			if type(value) == "number" then
				value = string.format("%d", value)
			end
			-- A value longer than any real one is Slurm's to refuse, not ours to pass.
			if string.len(tostring(value)) <= 1024 then
				table.insert(args, "--" .. string.gsub(field, "_", "-"))
				table.insert(args, tostring(value))
			end
		end
	end
end

local function refuse(message, modifying)
	-- Also in slurmctld's log: `scontrol update` in Slurm 22.05 shows the user only
	-- "Unspecified error" (slurmctld discards a modification's user message with an
	-- error of its own), so the reason must be findable there.
	slurm.log_info("cost-tags: refused: %s", message)
	if not modifying then
		slurm.log_user("%s", message)
	end
	return slurm.ERROR
end

local function decide(args, too_long, modifying)
	if too_long ~= nil then
		return refuse(too_long, modifying)
	end
	local code, message = project_check(args)
	if code == 0 then
		-- What the job may cost and what is left, when project-check says it (slurmctld
		-- cannot show a modifying user an acceptance line: it would only log an error).
		if message ~= nil and message ~= "" and not modifying then
			slurm.log_user("%s", message)
		end
		return slurm.SUCCESS
	end
	if code == 1 then
		return refuse(message, modifying)
	end
	local what
	if TIMED_OUT[code] then
		what = "project-check did not answer within " .. TIMEOUT .. " s (a slow user directory such as "
			.. "LDAP or AD, or a hung file system holding the projects file?)"
	elseif code == 127 or code == 126 then
		what = "project-check is missing or not executable at " .. PROJECT_CHECK
	elseif code == 2 then
		what = "its settings are unusable: " .. (message or "")
	else
		what = "project-check failed (exit " .. tostring(code) .. "): " .. (message or "")
	end
	slurm.log_error("cost-tags job_submit.lua: %s", what)
	if not modifying then
		slurm.log_user("%s", "Job refused: the project check is broken (" .. what .. "). Please tell the cluster administrator.")
	end
	return slurm.ERROR
end

function slurm_job_submit(job_desc, part_list, submit_uid)
	local args = { "--submit", "--uid", tostring(job_desc.user_id or submit_uid), "--by-uid", tostring(submit_uid) }
	if job_desc.user_name ~= nil then
		table.insert(args, "--user")
		table.insert(args, job_desc.user_name)
	end
	add_size(args, job_desc)
	return decide(args, add_fields(args, job_desc))
end

-- Appends `--was field=value` for each size or project field of the job as it is, so a
-- change of its size can be priced against what it holds already.
local function add_current(args, rec)
	local fields = { "comment", "account", "wckey", "array_task_cnt" }
	for _, field in ipairs(SIZE_FIELDS) do
		table.insert(fields, field)
	end
	for _, field in ipairs(fields) do
		local value = rec[field]
		if value ~= nil and value ~= "" then
			if type(value) == "number" then
				value = string.format("%d", value)
			end
			value = tostring(value)
			if string.len(value) <= MAX_TEXT_BYTES then
				table.insert(args, "--was")
				table.insert(args, field .. "=" .. value)
			end
		end
	end
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
	-- Only fields being changed are set in job_desc: project-check checks a changed
	-- project field, and prices a changed size against the job as it is.
	local args = { "--submit", "--modify", "--uid", tostring(job_rec.user_id), "--by-uid", tostring(modify_uid) }
	add_size(args, job_desc)
	add_current(args, job_rec)
	return decide(args, add_fields(args, job_desc), true)
end

return slurm.SUCCESS
