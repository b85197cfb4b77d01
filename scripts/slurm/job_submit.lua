--[[
cost-tags submit filter for Slurm (JobSubmitPlugins=lua; this file sits beside slurm.conf).

Every sbatch, srun and salloc allocation passes through here inside slurmctld. The policy
lives in project-check (tested Rust); this shim only hands it the job's fields and relays
its answer. Lua 5.1 can only start programs through /bin/sh, so every value is passed
single-quoted: nothing a user writes in a comment can reach the shell as code.

If project-check is missing, crashes, or its settings are broken, the job is refused with
a message for the administrator (fail closed): a filter that silently lets jobs through
would make spend untraceable without anyone noticing.

Environment of slurmctld (optional):
  COST_TAGS_PROJECT_CHECK  path of project-check (default /opt/slurm/bin/project-check)
  COST_TAGS_CONFIG         settings file passed on to project-check
]]

local PROJECT_CHECK = os.getenv("COST_TAGS_PROJECT_CHECK") or "/opt/slurm/bin/project-check"

-- 'it'\''s' : the one quoting sh never interprets.
local function quote(s)
	return "'" .. (string.gsub(tostring(s), "'", "'\\''")) .. "'"
end

-- Runs project-check with the given arguments; returns its exit code and its output.
local function project_check(args)
	local cmd = quote(PROJECT_CHECK)
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

-- Appends `--flag value` for each field Slurm set.
local function add_fields(args, desc)
	for _, field in ipairs({ "comment", "account", "wckey" }) do
		if desc[field] ~= nil then
			table.insert(args, "--" .. field)
			table.insert(args, desc[field])
		end
	end
end

local function decide(args)
	local code, message = project_check(args)
	if code == 0 then
		return slurm.SUCCESS
	end
	if code == 1 then
		-- Also in slurmctld's log: `scontrol update` in Slurm 22.05 shows the user only
		-- "Unspecified error", so the reason must be findable there.
		slurm.log_info("cost-tags: refused: %s", message)
		slurm.log_user("%s", message)
		return slurm.ERROR
	end
	local what
	if code == 127 or code == 126 then
		what = "project-check is missing or not executable at " .. PROJECT_CHECK
	elseif code == 2 then
		what = "its settings are unusable: " .. (message or "")
	else
		what = "project-check failed (exit " .. tostring(code) .. "): " .. (message or "")
	end
	slurm.log_error("cost-tags job_submit.lua: %s", what)
	slurm.log_user("%s", "Job refused: the project check is broken (" .. what .. "). Please tell the cluster administrator.")
	return slurm.ERROR
end

function slurm_job_submit(job_desc, part_list, submit_uid)
	local args = { "--submit", "--uid", tostring(job_desc.user_id or submit_uid), "--by-uid", tostring(submit_uid) }
	if job_desc.user_name ~= nil then
		table.insert(args, "--user")
		table.insert(args, job_desc.user_name)
	end
	add_fields(args, job_desc)
	return decide(args)
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
	-- Only fields being changed are set in job_desc; project-check ignores a
	-- modification that leaves the project field alone.
	local args = { "--submit", "--modify", "--uid", tostring(job_rec.user_id), "--by-uid", tostring(modify_uid) }
	add_fields(args, job_desc)
	return decide(args)
end

return slurm.SUCCESS
